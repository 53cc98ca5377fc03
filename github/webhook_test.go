package github

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/broker"
)

type recordedChange struct {
	id     int64
	change broker.InstallationChange
}

type changeRecorder struct {
	mu      sync.Mutex
	changes []recordedChange
}

func (r *changeRecorder) InstallationChanged(_ context.Context, id int64, change broker.InstallationChange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, recordedChange{id, change})
}

func installationPayload(action string, id int64) []byte {
	return fmt.Appendf(nil, `{"action":%q,"installation":{"id":%d,"account":{"login":"acme","id":1}}}`, action, id)
}

func deliver(t testing.TB, h http.Handler, event string, body []byte, signature string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "d-1")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	_, _ = io.Copy(io.Discard, rec.Body)
	return rec.Code
}

func TestWebhookHandler(t *testing.T) {
	secret := []byte("webhook-secret")
	sign := func(body []byte) string { return broker.Sign(secret, body) } // the same sha256=<hex HMAC> scheme
	tests := []struct {
		name      string
		event     string
		body      []byte
		signature string
		noLeader  bool
		wantCode  int
		want      []recordedChange
	}{
		{"suspend", "installation", installationPayload("suspend", 42), "", false, http.StatusNoContent,
			[]recordedChange{{42, broker.InstallationSuspended}}},
		{"deleted", "installation", installationPayload("deleted", 42), "", false, http.StatusNoContent,
			[]recordedChange{{42, broker.InstallationDeleted}}},
		{"unsuspend", "installation", installationPayload("unsuspend", 7), "", false, http.StatusNoContent,
			[]recordedChange{{7, broker.InstallationUnsuspended}}},
		{"new permissions accepted", "installation", installationPayload("new_permissions_accepted", 7), "", false, http.StatusNoContent,
			[]recordedChange{{7, broker.InstallationPermissionsChanged}}},
		{"an action credbroker ignores", "installation", installationPayload("created", 7), "", false, http.StatusNoContent, nil},
		{"another event type", "ping", []byte(`{"zen":"hi","hook_id":1}`), "", false, http.StatusNoContent, nil},
		{"wrong signature", "installation", installationPayload("suspend", 42), broker.Sign([]byte("other"), installationPayload("suspend", 42)), false,
			http.StatusUnauthorized, nil},
		{"no signature", "installation", installationPayload("suspend", 42), "-", false, http.StatusUnauthorized, nil},
		{"signed garbage", "installation", []byte(`{"action":`), "", false, http.StatusBadRequest, nil},
		{"no leader here", "installation", installationPayload("suspend", 42), "", true, http.StatusServiceUnavailable, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &changeRecorder{}
			current := func() InstallationListener { return rec }
			if tc.noLeader {
				current = func() InstallationListener { return nil }
			}
			sig := tc.signature
			switch sig {
			case "":
				sig = sign(tc.body)
			case "-":
				sig = ""
			}
			h := WebhookHandler(secret, current, slog.New(slog.DiscardHandler))
			if code := deliver(t, h, tc.event, tc.body, sig); code != tc.wantCode {
				t.Errorf("status %d, want %d", code, tc.wantCode)
			}
			if fmt.Sprint(rec.changes) != fmt.Sprint(tc.want) {
				t.Errorf("listener heard %v, want %v", rec.changes, tc.want)
			}
		})
	}
}

// FuzzWebhookHandler: whatever arrives, the handler does not panic, and
// nothing without the right signature reaches the listener.
func FuzzWebhookHandler(f *testing.F) {
	secret := []byte("webhook-secret")
	f.Add("installation", installationPayload("suspend", 42), true)
	f.Add("installation", []byte(`{"action":"deleted","installation":{"id":-1}}`), true)
	f.Add("installation_repositories", []byte(`{}`), false)
	f.Add("", []byte(`null`), true)
	f.Fuzz(func(t *testing.T, event string, body []byte, signed bool) {
		rec := &changeRecorder{}
		h := WebhookHandler(secret, func() InstallationListener { return rec }, slog.New(slog.DiscardHandler))
		sig := broker.Sign([]byte("not the secret"), body)
		if signed {
			sig = broker.Sign(secret, body)
		}
		deliver(t, h, event, body, sig)
		if !signed && len(rec.changes) > 0 {
			t.Fatalf("an unsigned delivery reached the listener: %v", rec.changes)
		}
	})
}
