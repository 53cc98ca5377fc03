package github

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/broker/inbox"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
)

// acceptedDeliveries records what a handler accepted, once per delivery id, or fails
// every call while down.
type acceptedDeliveries struct {
	mu         sync.Mutex
	deliveries []broker.Delivery
	down       bool
}

func (in *acceptedDeliveries) accept(_ context.Context, d broker.Delivery) (bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.down {
		return false, errors.New("the API server is restarting")
	}
	for _, seen := range in.deliveries {
		if seen.Key() == d.Key() {
			return false, nil
		}
	}
	in.deliveries = append(in.deliveries, d)
	return true, nil
}

func installationPayload(action string, id int64) []byte {
	return fmt.Appendf(nil, `{"action":%q,"installation":{"id":%d,"account":{"login":"acme","id":1,"type":"Organization"}}}`, action, id)
}

// A rename as GitHub sends it: installation_target, the account under its
// new login, the old one in changes.
var renamedPayload = []byte(`{"action":"renamed","account":{"login":"acme-corp","id":1,"type":"Organization"},
	"changes":{"login":{"from":"acme"}},"installation":{"id":42},"target_type":"Organization"}`)

func deliver(t testing.TB, h http.Handler, event, id string, body []byte, headers map[string]string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	_, _ = io.Copy(io.Discard, rec.Body)
	return rec.Code
}

func TestDeliveryHandler(t *testing.T) {
	secret := []byte("webhook-secret")
	signed := func(body []byte) map[string]string {
		return map[string]string{"X-Hub-Signature-256": githubSignature(secret, body)}
	}
	sha1Only := func(body []byte) map[string]string {
		mac := hmac.New(sha1.New, secret)
		mac.Write(body)
		return map[string]string{"X-Hub-Signature": "sha1=" + hex.EncodeToString(mac.Sum(nil))}
	}
	acme := broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization}
	tests := []struct {
		name     string
		event    string
		body     []byte
		headers  func([]byte) map[string]string
		down     bool
		wantCode int
		want     []broker.Delivery
	}{
		{"suspend", "installation", installationPayload("suspend", 42), signed, false, http.StatusAccepted,
			[]broker.Delivery{{ID: "d-1", InstallationID: 42, Change: broker.InstallationSuspended, Account: acme}}},
		{"deleted", "installation", installationPayload("deleted", 42), signed, false, http.StatusAccepted,
			[]broker.Delivery{{ID: "d-1", InstallationID: 42, Change: broker.InstallationDeleted, Account: acme}}},
		{"unsuspend", "installation", installationPayload("unsuspend", 7), signed, false, http.StatusAccepted,
			[]broker.Delivery{{ID: "d-1", InstallationID: 7, Change: broker.InstallationUnsuspended, Account: acme}}},
		{"new permissions accepted", "installation", installationPayload("new_permissions_accepted", 7), signed, false, http.StatusAccepted,
			[]broker.Delivery{{ID: "d-1", InstallationID: 7, Change: broker.InstallationPermissionsChanged, Account: acme}}},
		{"an organization renamed", "installation_target", renamedPayload, signed, false, http.StatusAccepted,
			[]broker.Delivery{{ID: "d-1", InstallationID: 42, Change: broker.AccountRenamed, Account: broker.Owner{Login: "acme-corp", ID: 1, Type: broker.OwnerOrganization}}}},
		{"an action credbroker ignores", "installation", installationPayload("created", 7), signed, false, http.StatusNoContent, nil},
		{"another event type", "ping", []byte(`{"zen":"hi","hook_id":1}`), signed, false, http.StatusNoContent, nil},
		{"wrong signature", "installation", installationPayload("suspend", 42), func(b []byte) map[string]string {
			return map[string]string{"X-Hub-Signature-256": githubSignature([]byte("other"), b)}
		}, false, http.StatusUnauthorized, nil},
		{"no signature", "installation", installationPayload("suspend", 42), func([]byte) map[string]string { return nil }, false, http.StatusUnauthorized, nil},
		{"signed only with the legacy SHA-1 header", "installation", installationPayload("suspend", 42), sha1Only, false, http.StatusUnauthorized, nil},
		{"signed garbage", "installation", []byte(`{"action":`), signed, false, http.StatusBadRequest, nil},
		{"the store is down: GitHub is told to redeliver", "installation", installationPayload("suspend", 42), signed, true, http.StatusServiceUnavailable, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &acceptedDeliveries{down: tc.down}
			h := DeliveryHandler(secret, in.accept, slog.New(slog.DiscardHandler))
			if code := deliver(t, h, tc.event, "d-1", tc.body, tc.headers(tc.body)); code != tc.wantCode {
				t.Errorf("status %d, want %d", code, tc.wantCode)
			}
			sum := sha256.Sum256(tc.body)
			for i := range tc.want {
				tc.want[i].Digest = "sha256:" + hex.EncodeToString(sum[:])
			}
			if fmt.Sprint(in.deliveries) != fmt.Sprint(tc.want) {
				t.Errorf("stored %+v, want %+v", in.deliveries, tc.want)
			}
		})
	}
}

// A delivery replayed — by GitHub's redelivery or by whoever captured it —
// is answered 200 and stored once.
func TestAReplayedDeliveryIsStoredOnce(t *testing.T) {
	secret := []byte("webhook-secret")
	in := &acceptedDeliveries{}
	h := DeliveryHandler(secret, in.accept, slog.New(slog.DiscardHandler))
	body := installationPayload("suspend", 42)
	headers := map[string]string{"X-Hub-Signature-256": githubSignature(secret, body)}
	for i, want := range []int{http.StatusAccepted, http.StatusOK, http.StatusOK} {
		if code := deliver(t, h, "installation", "d-7", body, headers); code != want {
			t.Errorf("delivery %d: status %d, want %d", i+1, code, want)
		}
	}
	if len(in.deliveries) != 1 {
		t.Errorf("%d stored, want 1", len(in.deliveries))
	}
}

// The attacker captured one signed suspend delivery and sends its body
// again under fresh X-GitHub-Delivery ids, which the signature does not
// cover: through the handler and the inbox it is stored, and acted on,
// once; the replays are answered 200, as redeliveries are.
func TestACapturedSuspendUnderFreshDeliveryIDsIsActedOnOnce(t *testing.T) {
	secret := []byte("webhook-secret")
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds := inbox.NewRunner(store, clock.RealClock{}, slog.New(slog.DiscardHandler))
	h := DeliveryHandler(secret, ds.Accept, slog.New(slog.DiscardHandler))
	body := installationPayload("suspend", 42)
	headers := map[string]string{"X-Hub-Signature-256": githubSignature(secret, body)}
	for i, id := range []string{"captured", "fresh-1", "fresh-2", "fresh-3"} {
		want := http.StatusOK
		if i == 0 {
			want = http.StatusAccepted
		}
		if code := deliver(t, h, "installation", id, body, headers); code != want {
			t.Errorf("delivery under %s: status %d, want %d", id, code, want)
		}
	}
	// The leader acts on everything pending; the replays would be pending
	// behind the first.
	var acted []string
	done := make(chan error, 1)
	go func() {
		done <- ds.Run(ctx, func(_ context.Context, d broker.Delivery) {
			acted = append(acted, d.ID)
			if pending, _ := store.PendingDeliveries(ctx, 10); len(pending) <= 1 {
				cancel()
			}
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(acted) != 1 {
		t.Errorf("acted on %v, want the captured delivery once", acted)
	}
}

// FuzzDeliveryHandler: whatever arrives, the handler does not panic, and
// nothing without the right signature is stored.
func FuzzDeliveryHandler(f *testing.F) {
	secret := []byte("webhook-secret")
	f.Add("installation", installationPayload("suspend", 42), true)
	f.Add("installation", []byte(`{"action":"deleted","installation":{"id":-1}}`), true)
	f.Add("installation_repositories", []byte(`{}`), false)
	f.Add("", []byte(`null`), true)
	f.Fuzz(func(t *testing.T, event string, body []byte, signed bool) {
		in := &acceptedDeliveries{}
		h := DeliveryHandler(secret, in.accept, slog.New(slog.DiscardHandler))
		sig := githubSignature([]byte("not the secret"), body)
		if signed {
			sig = githubSignature(secret, body)
		}
		deliver(t, h, event, "d-1", body, map[string]string{"X-Hub-Signature-256": sig})
		if !signed && len(in.deliveries) > 0 {
			t.Fatalf("an unsigned delivery was stored: %v", in.deliveries)
		}
	})
}

// githubSignature is X-Hub-Signature-256 as GitHub computes it: the hex
// HMAC-SHA256 of the body.
func githubSignature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
