package broker_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
)

// receiver is the backend's webhook endpoint as a backend would write it:
// it checks the HMAC itself, and fails its first request.
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
	n := broker.NewNotifier(store, true, clock.RealClock{}, nil, log)
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
	wh := broker.NewWebhook(broker.WebhookConfig{URL: backend.URL, Secret: secret, Encode: api.EventJSON}, store, nil, nil, log)
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
