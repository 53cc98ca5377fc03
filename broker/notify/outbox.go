package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/kit"

	"k8s.io/utils/clock"
)

// Webhook headers. The signature is "sha256=" and the hex HMAC-SHA256,
// under the shared secret, of the timestamp header's value, a dot and the
// body: a receiver that checks the signature and refuses an old timestamp
// cannot be fed a captured request again. The event id makes retries
// idempotent for the receiver.
const (
	HeaderSignature = "X-Credbroker-Signature"
	HeaderTimestamp = "X-Credbroker-Timestamp"
	HeaderEventID   = "X-Credbroker-Event-Id"
)

// OutboxConfig says where events go.
type OutboxConfig struct {
	URL    string
	Secret []byte
	// Encode renders an event as the body of its request: the API's JSON
	// (api.EventJSON), so that the backend parses webhooks and API answers
	// alike. The domain does not know the wire format.
	Encode func(broker.Event) ([]byte, error)
	// Client sends the requests; a client with a 10s timeout when nil.
	Client *http.Client
	Clock  clock.Clock
	Jitter func() float64
	// Idle is how often the outbox is read when nothing wakes the
	// deliverer; 30s when zero.
	Idle time.Duration
	// MaxAttempts is how often an event is tried before it leaves the
	// outbox undelivered (DefaultMaxAttempts when zero): at the 5-minute
	// backoff ceiling, eight hours of a receiver that fails.
	MaxAttempts int
	// MaxOutbox bounds the events waiting for the receiver
	// (DefaultMaxOutbox when zero): past it the oldest leave undelivered,
	// so that a receiver gone for days costs a bounded store.
	MaxOutbox int
}

// Outbox defaults: see OutboxConfig.
const (
	DefaultMaxAttempts = 100
	DefaultMaxOutbox   = 1000
)

// permanentAfter is how often a receiver may refuse an event for good (a
// 4xx other than 408, 425 and 429) before the event leaves the outbox: a
// few, in case the refusal came from a receiver mid-deploy.
const permanentAfter = 3

// Outbox delivers the outbox to the backend: in order, at least once,
// retrying with backoff (1s to 5m) while the receiver fails. Events wait in
// the Store, so a crash or restart loses none. An event the receiver
// refuses for good, or fails MaxAttempts times, leaves the outbox
// undelivered — a WEBHOOK_UNDELIVERED event in the log and a metric say
// so — rather than block every event behind it.
type Outbox struct {
	cfg      OutboxConfig
	store    broker.EventStore
	notifier *Notifier
	metrics  *broker.Metrics
	log      *slog.Logger
}

// NewOutbox returns a deliverer; notifier (may be nil) wakes it when an
// event is written, and records the events that could not be delivered.
func NewOutbox(cfg OutboxConfig, store broker.EventStore, notifier *Notifier, metrics *broker.Metrics, log *slog.Logger) *Outbox {
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
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxOutbox == 0 {
		cfg.MaxOutbox = DefaultMaxOutbox
	}
	return &Outbox{cfg: cfg, store: store, notifier: notifier, metrics: metrics, log: log}
}

// Run delivers until ctx is done.
func (w *Outbox) Run(ctx context.Context) error {
	failures, failing := 0, "" // consecutive failures of the event at the head
	for {
		var woken <-chan struct{}
		if w.notifier != nil {
			woken = w.notifier.Appended()
		}
		wait := w.cfg.Idle
		pending, err := w.store.PendingEvents(ctx, w.cfg.MaxOutbox+1)
		if err != nil {
			w.log.WarnContext(ctx, "read webhook outbox", slog.Any("error", err))
		}
		pending = w.trim(ctx, pending)
		pending = pending[:min(len(pending), 100)]
		for i, ev := range pending {
			if ev.ID != failing {
				failures, failing = 0, ev.ID
			}
			err := w.post(ctx, ev)
			w.metrics.Delivered(err, len(pending)-i-1)
			switch {
			case err == nil:
				err = w.store.MarkDelivered(ctx, ev.ID)
			case ctx.Err() != nil:
				return nil
			default:
				failures++
				if w.giveUp(err, failures) {
					err, failures = w.deadLetter(ctx, ev, err, failures), 0
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				wait, woken = kit.Backoff(max(failures, 1)-1, time.Second, 5*time.Minute, w.cfg.Jitter), nil
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

// trim lets the oldest events past MaxOutbox leave the outbox undelivered,
// and returns the rest.
func (w *Outbox) trim(ctx context.Context, pending []broker.Event) []broker.Event {
	for len(pending) > w.cfg.MaxOutbox {
		ev := pending[0]
		if err := w.deadLetter(ctx, ev, fmt.Errorf("the outbox holds more than %d events", w.cfg.MaxOutbox), 0); err != nil {
			w.log.WarnContext(ctx, "trim webhook outbox", slog.String("event", ev.ID), slog.Any("error", err))
			return pending
		}
		pending = pending[1:]
	}
	return pending
}

// giveUp reports whether an event that failed failures times in a row
// leaves the outbox.
func (w *Outbox) giveUp(err error, failures int) bool {
	var refused *refusedError
	if errors.As(err, &refused) && refused.permanent() && failures >= permanentAfter {
		return true
	}
	return failures >= w.cfg.MaxAttempts
}

// deadLetter records that ev was not delivered and takes it out of the
// outbox. The record is an event in the log for the backend to read over
// the API, never sent by webhook (it is about the webhook).
func (w *Outbox) deadLetter(ctx context.Context, ev broker.Event, err error, failures int) error {
	w.metrics.Undelivered()
	w.log.ErrorContext(ctx, "webhook event undelivered", slog.String("event", ev.ID), slog.String("tenant", ev.TenantID),
		slog.Int("attempts", failures), slog.Any("error", err))
	record := broker.Event{Type: broker.EventWebhookUndelivered, TenantID: ev.TenantID, Namespace: ev.Namespace, Severity: broker.SeverityWarning,
		Reason: ev.Reason, Message: fmt.Sprintf("event %s (%s) was not delivered (%d attempts): %v", ev.ID, ev.Type, failures, err)}
	if w.notifier != nil && !w.notifier.Record(ctx, record) {
		return errors.New("the undelivered event could not be recorded")
	}
	return w.store.MarkDelivered(ctx, ev.ID)
}

// Sign returns the signature header value for a request with the given
// timestamp header and body.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// refusedError is a receiver's non-2xx answer.
type refusedError struct {
	event  string
	status string
	code   int
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("post event %s: receiver answered %s", e.event, e.status)
}

// permanent reports whether the receiver will refuse the event again
// however often it is sent: a 4xx but a timeout, too early or too many.
func (e *refusedError) permanent() bool {
	switch e.code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return e.code/100 == 4
}

func (w *Outbox) post(ctx context.Context, ev broker.Event) error {
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
	timestamp := strconv.FormatInt(w.cfg.Clock.Now().Unix(), 10)
	req.Header.Set(HeaderTimestamp, timestamp)
	req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, timestamp, body))
	req.Header.Set(HeaderEventID, ev.ID)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post event %s: %w", ev.ID, err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return &refusedError{event: ev.ID, status: resp.Status, code: resp.StatusCode}
	}
	return nil
}
