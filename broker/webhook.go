package broker

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"k8s.io/utils/clock"
)

// Webhook headers. The signature is "sha256=" and the hex HMAC-SHA256 of
// the body under the shared secret; the event id makes retries idempotent
// for the receiver.
const (
	HeaderSignature = "X-Credbroker-Signature"
	HeaderTimestamp = "X-Credbroker-Timestamp"
	HeaderEventID   = "X-Credbroker-Event-Id"
)

// WebhookConfig says where events go.
type WebhookConfig struct {
	URL    string
	Secret []byte
	// Encode renders an event as the body of its request: the API's JSON
	// (api.EventJSON), so that the backend parses webhooks and API answers
	// alike. The domain does not know the wire format.
	Encode func(Event) ([]byte, error)
	// Client sends the requests; a client with a 10s timeout when nil.
	Client *http.Client
	Clock  clock.Clock
	Jitter func() float64
	// Idle is how often the outbox is read when nothing wakes the
	// deliverer; 30s when zero.
	Idle time.Duration
}

// Webhook delivers the outbox to the backend: in order, at least once,
// retrying with backoff (1s to 5m) while the receiver fails. Events wait in
// the Store, so a crash or restart loses none.
type Webhook struct {
	cfg      WebhookConfig
	store    EventStore
	appended func() <-chan struct{}
	metrics  *Metrics
	log      *slog.Logger
}

// NewWebhook returns a deliverer; appended (may be nil) wakes it when an
// event is written.
func NewWebhook(cfg WebhookConfig, store EventStore, appended func() <-chan struct{}, metrics *Metrics, log *slog.Logger) *Webhook {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Idle == 0 {
		cfg.Idle = 30 * time.Second
	}
	if appended == nil {
		appended = func() <-chan struct{} { return nil }
	}
	return &Webhook{cfg: cfg, store: store, appended: appended, metrics: metrics, log: log}
}

// Run delivers until ctx is done.
func (w *Webhook) Run(ctx context.Context) error {
	failures := 0
	for {
		woken := w.appended()
		wait := w.cfg.Idle
		pending, err := w.store.PendingEvents(ctx, 100)
		if err != nil {
			w.log.WarnContext(ctx, "read webhook outbox", slog.Any("error", err))
		}
		for i, ev := range pending {
			err := w.post(ctx, ev)
			w.metrics.delivered(err, len(pending)-i-1)
			if err == nil {
				err = w.store.MarkDelivered(ctx, ev.ID)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failures++
				wait, woken = backoff(failures-1, time.Second, 5*time.Minute, w.cfg.Jitter), nil
				w.log.WarnContext(ctx, "webhook delivery failed", slog.String("event", ev.ID), slog.Any("error", err),
					slog.Int("failures", failures), slog.Duration("retryIn", wait))
				break
			}
			failures = 0
			w.log.DebugContext(ctx, "webhook delivered", slog.String("event", ev.ID))
			if i == len(pending)-1 && len(pending) == 100 {
				wait = 0 // more may wait behind this page
			}
		}
		timer := w.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-woken:
		case <-timer.C():
		}
		timer.Stop()
	}
}

// Sign returns the signature header value for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *Webhook) post(ctx context.Context, ev Event) error {
	body, err := w.cfg.Encode(ev)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "credbroker")
	req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, body))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(w.cfg.Clock.Now().Unix(), 10))
	req.Header.Set(HeaderEventID, ev.ID)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post event %s: %w", ev.ID, err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post event %s: receiver answered %s", ev.ID, resp.Status)
	}
	return nil
}
