package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/notify"
)

// receiver is the backend's webhook endpoint as docs/notifications.md tells
// a backend to write it: it checks the HMAC of timestamp and body itself,
// refuses a timestamp older than a minute, and fails its first request.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	calls  int
	got    []map[string]any
	ids    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, rc.secret)
	mac.Write([]byte(r.Header.Get("X-Credbroker-Timestamp") + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(r.Header.Get("X-Credbroker-Signature")), []byte(want)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if ts, err := strconv.ParseInt(r.Header.Get("X-Credbroker-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		http.Error(w, "stale", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if rc.calls == 1 {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, ev)
	rc.ids = append(rc.ids, r.Header.Get("X-Credbroker-Event-Id"))
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) received() ([]map[string]any, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.got...), append([]string(nil), rc.ids...)
}

func TestWebhookDeliversQueuedEventsAfterARestart(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	secret := []byte("backend-shared-secret")

	// The broker queues two events, then dies before delivering them.
	store, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := notify.NewNotifier(store, true, clock.RealClock{}, nil, log)
	n.Raise(ctx, broker.Event{Type: broker.EventCredentialRevoked, TenantID: "a", Severity: broker.SeverityCritical,
		Reason: broker.ReasonTokenRevoked, Message: "revoked", DedupeKey: "a/credential"})
	n.Raise(ctx, broker.Event{Type: broker.EventProbeFailed, TenantID: "b", Severity: broker.SeverityWarning,
		Reason: broker.ReasonAppTokenNotAccepted, Message: "denied", DedupeKey: "b/probe"})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// It starts again; the receiver is up but fails at first.
	rc := &receiver{secret: secret}
	backend := httptest.NewServer(rc)
	defer backend.Close()
	store, err = boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	wh := notify.NewOutbox(notify.OutboxConfig{URL: backend.URL, Secret: secret, Encode: api.EventJSON}, store, nil, nil, log)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- wh.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := rc.received(); len(got) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queued events were not delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, ids := rc.received()
	if got[0]["type"] != "EVENT_TYPE_CREDENTIAL_REVOKED" || got[0]["tenantId"] != "a" || got[0]["reason"] != "REASON_TOKEN_REVOKED" ||
		got[1]["type"] != "EVENT_TYPE_PROBE_FAILED" || got[1]["tenantId"] != "b" {
		t.Errorf("delivered out of order or in another shape: %v", got)
	}
	if ids[0] != got[0]["id"] || ids[1] != got[1]["id"] || ids[0] >= ids[1] {
		t.Errorf("event id headers %v do not match the bodies", ids)
	}
	if pending, err := store.PendingEvents(ctx, 10); err != nil || len(pending) != 0 {
		t.Errorf("outbox after delivery: %v, %v", pending, err)
	}
}

// refuser is a receiver that refuses events of one type for good (400) and
// takes the others.
type refuser struct {
	mu       sync.Mutex
	refused  int
	accepted []string
}

func (rf *refuser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev map[string]any
	_ = json.NewDecoder(r.Body).Decode(&ev)
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if ev["type"] == "EVENT_TYPE_PROBE_FAILED" {
		rf.refused++
		http.Error(w, "unknown event type", http.StatusBadRequest)
		return
	}
	rf.accepted = append(rf.accepted, ev["tenantId"].(string))
	w.WriteHeader(http.StatusNoContent)
}

// An event the receiver refuses for good does not block the events behind
// it: after a few refusals it leaves the outbox, a WEBHOOK_UNDELIVERED
// event (never sent) records it, and the next is delivered.
func TestAnEventRefusedForGoodDoesNotBlockTheOutbox(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	store, n := outbox(t, clock.RealClock{})
	n.Raise(ctx, broker.Event{Type: broker.EventProbeFailed, TenantID: "a", Severity: broker.SeverityWarning, Message: "denied", DedupeKey: "a/probe"})
	n.Raise(ctx, broker.Event{Type: broker.EventCredentialRevoked, TenantID: "b", Severity: broker.SeverityCritical, Message: "revoked", DedupeKey: "b/credential"})
	rf := &refuser{}
	backend := httptest.NewServer(rf)
	defer backend.Close()
	wh := notify.NewOutbox(notify.OutboxConfig{URL: backend.URL, Secret: []byte("s"), Encode: api.EventJSON,
		Jitter: func() float64 { return 0 }}, store, n, nil, log)
	done := make(chan error, 1)
	go func() { done <- wh.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rf.mu.Lock()
		accepted := len(rf.accepted)
		rf.mu.Unlock()
		if accepted == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event behind the refused one was never delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if rf.refused != 3 || rf.accepted[0] != "b" {
		t.Errorf("refused %d times, accepted %v; want 3 refusals, then b", rf.refused, rf.accepted)
	}
	if pending, _ := store.PendingEvents(context.Background(), 10); len(pending) != 0 {
		t.Errorf("outbox %v, want empty", pending)
	}
	log2, _ := store.EventsAfter(context.Background(), "", 10)
	var undelivered []broker.Event
	for _, ev := range log2 {
		if ev.Type == broker.EventWebhookUndelivered {
			undelivered = append(undelivered, ev)
		}
	}
	if len(undelivered) != 1 || undelivered[0].TenantID != "a" || !strings.Contains(undelivered[0].Message, "400") {
		t.Errorf("undelivered records %+v, want one for a's event naming the 400", undelivered)
	}
}

// The signature covers the timestamp: a captured request sent again with
// a fresh timestamp no longer verifies.
func TestTheSignatureCoversTheTimestamp(t *testing.T) {
	secret, body := []byte("s"), []byte(`{"id":"1"}`)
	sig := notify.Sign(secret, "1764590400", body)
	if sig == notify.Sign(secret, "1764594000", body) {
		t.Error("the signature does not change with the timestamp")
	}
	if sig != notify.Sign(secret, "1764590400", body) || sig == notify.Sign(secret, "1764590400", []byte(`{"id":"2"}`)) {
		t.Error("the signature is not a function of timestamp and body")
	}
}

// flaky is a receiver that is down (503) until up is set, and counts.
type flaky struct {
	mu       sync.Mutex
	up       bool
	attempts int
	ids      []string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if !f.up {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	f.ids = append(f.ids, r.Header.Get("X-Credbroker-Event-Id"))
	w.WriteHeader(http.StatusNoContent)
}

// The receiver down for a simulated hour: the deliverer backs off (up to
// 5 min), gives up on nothing, and once the receiver is back delivers each
// event exactly once, in order.
func TestAReceiverDownForAnHourLosesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	store, n := outbox(t, clk)
	for _, tenant := range []string{"a", "b", "c"} {
		n.Raise(ctx, broker.Event{Type: broker.EventProbeFailed, TenantID: tenant, Severity: broker.SeverityWarning, Message: "denied",
			DedupeKey: broker.ConditionKey(tenant + "/probe")})
	}
	rc := &flaky{}
	backend := httptest.NewServer(rc)
	defer backend.Close()
	wh := notify.NewOutbox(notify.OutboxConfig{URL: backend.URL, Secret: []byte("s"), Encode: api.EventJSON, Clock: clk,
		Jitter: func() float64 { return 0.5 }}, store, n, nil, log)
	done := make(chan error, 1)
	go func() { done <- wh.Run(ctx) }()

	// Move the clock from each wait of the deliverer to the next.
	advance := func(until time.Time) {
		for clk.Now().Before(until) {
			deadline := time.Now().Add(10 * time.Second)
			for !clk.HasWaiters() {
				if time.Now().After(deadline) {
					t.Fatal("the deliverer never waited")
				}
				time.Sleep(time.Millisecond)
			}
			clk.Step(10 * time.Second)
		}
	}
	advance(clk.Now().Add(time.Hour))
	rc.mu.Lock()
	down := rc.attempts
	rc.up = true
	rc.mu.Unlock()
	advance(clk.Now().Add(10 * time.Minute))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	t.Logf("%d attempts in the simulated hour the receiver was down", down)
	if down < 10 || down > 40 {
		t.Errorf("%d attempts in an hour: want backoff to 5 min (about 15), not a storm nor silence", down)
	}
	evs, _ := store.EventsAfter(context.Background(), "", 10)
	var want []string
	for _, ev := range evs {
		if ev.Type == broker.EventWebhookUndelivered {
			t.Errorf("an event was given up: %s", ev.Message)
		}
		want = append(want, ev.ID)
	}
	if fmt.Sprint(rc.ids) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want each of %v once, in order", rc.ids, want)
	}
}

// outbox is an event log with a webhook outbox in a bbolt file of the
// test's own, and a Notifier writing to it.
func outbox(t *testing.T, clk clock.PassiveClock) (*boltstore.Store, *notify.Notifier) {
	t.Helper()
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store, notify.NewNotifier(store, true, clk, nil, slog.New(slog.DiscardHandler))
}

// The outbox is bounded: with the receiver down, the oldest events past
// MaxOutbox leave it undelivered (recorded), the newest wait.
func TestTheOutboxIsBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, n := outbox(t, clock.RealClock{})
	for _, tenant := range []string{"a", "b", "c"} {
		n.Raise(ctx, broker.Event{Type: broker.EventProbeFailed, TenantID: tenant, Severity: broker.SeverityWarning, Message: "denied",
			DedupeKey: broker.ConditionKey(tenant + "/probe")})
	}
	backend := httptest.NewServer(&flaky{})
	defer backend.Close()
	wh := notify.NewOutbox(notify.OutboxConfig{URL: backend.URL, Secret: []byte("s"), Encode: api.EventJSON, MaxOutbox: 2},
		store, n, nil, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- wh.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, _ := store.PendingEvents(context.Background(), 10)
		if len(pending) == 2 {
			if pending[0].TenantID != "b" || pending[1].TenantID != "c" {
				t.Errorf("pending %+v, want b's and c's (the newest)", pending)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events pending, want the outbox cut to 2", len(pending))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	evs, _ := store.EventsAfter(context.Background(), "", 10)
	var undelivered []string
	for _, ev := range evs {
		if ev.Type == broker.EventWebhookUndelivered {
			undelivered = append(undelivered, ev.TenantID+": "+ev.Message)
		}
	}
	if len(undelivered) != 1 || !strings.HasPrefix(undelivered[0], "a: ") || !strings.Contains(undelivered[0], "more than 2") {
		t.Errorf("undelivered records %v, want a's, naming the bound", undelivered)
	}
}
