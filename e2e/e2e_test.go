// Package e2e proves credbroker's whole chain with parts nobody here wrote:
// the built binary syncs into a real kube-apiserver, the GitHub emulator
// runs as its own process, CNCF Distribution checks tokens from the
// emulator's realm, and crane pulls with exactly the .dockerconfigjson read
// back from the synced Secret.
package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/auth"
)

// backend is the platform backend's webhook receiver: it checks the
// signature as a backend would and keeps what it was told.
type backend struct {
	secret []byte
	mu     sync.Mutex
	events []map[string]any
	at     []time.Time // when each event arrived
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, b.secret) // over timestamp, a dot and the body
	mac.Write([]byte(r.Header.Get("X-Credbroker-Timestamp") + "."))
	mac.Write(body)
	if !hmac.Equal([]byte(r.Header.Get("X-Credbroker-Signature")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.events = append(b.events, ev)
	b.at = append(b.at, time.Now())
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (b *backend) has(typ, tenant string) bool {
	_, ok := b.received(typ, tenant)
	return ok
}

// received is when the first event of a type about a tenant arrived.
func (b *backend) received(typ, tenant string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, ev := range b.events {
		if ev["type"] == typ && ev["tenantId"] == tenant {
			return b.at[i], true
		}
	}
	return time.Time{}, false
}

// broker is the running credbroker binary, seen through its REST API.
type brokerAPI struct {
	t      *testing.T
	url    string
	token  string
	client *http.Client // http.DefaultClient when nil
}

func (b brokerAPI) call(method, path, body string) (int, map[string]any) {
	b.t.Helper()
	client := b.client
	if client == nil {
		client = http.DefaultClient
	}
	code, raw := testenv.RESTWith(b.t, client, method, b.url+path, b.token, body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return code, out
}

func (b brokerAPI) status(tenant string) map[string]any {
	b.t.Helper()
	_, st := b.call(http.MethodGet, "/v1/tenants/"+tenant+"/credential", "")
	return st
}

func TestEndToEnd(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	ctx := context.Background()
	dir := t.TempDir()
	credbroker, githubemu := testenv.Build(t, "../cmd/credbroker"), testenv.Build(t, "./githubemu")

	// GitHub, and ghcr.io with images of three owners.
	fx, control := startEmulator(t, githubemu, distribution(t, registryBin)...)
	registry := fx.Registry
	for _, repo := range []string{"a-org/app:v1", "b-org/app:v1", "c-org/app:v1"} {
		pushImage(t, craneBin, registry, repo, fx)
	}

	cp := testenv.Cluster(t, "credbroker", "a-ns", "c-ns")
	kube, kubeconfig := cp.Admin, cp.Kubeconfig(t, "credbroker-e2e")

	// The backend that hears about problems.
	be := &backend{secret: []byte("e2e-webhook-secret")}
	receiver := httptest.NewServer(be)
	defer receiver.Close()

	// credbroker.
	const adminToken = "e2e-admin-token"
	files := map[string]string{
		"app.pem":        fx.AppKeyPEM,
		"enc.key":        strings.Repeat("k", 32),
		"webhook.secret": string(be.secret),
		"tokens.yaml":    fmt.Sprintf("tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(adminToken)),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, httpAddr := startBroker(t, credbroker, "--data-dir", filepath.Join(dir, "data"), "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--github-url", fx.APIURL, "--github-app-id", fmt.Sprint(fx.AppID), "--github-app-key-file", filepath.Join(dir, "app.pem"),
		"--encryption-key-file", filepath.Join(dir, "enc.key"), "--auth-token-file", filepath.Join(dir, "tokens.yaml"),
		"--webhook-url", receiver.URL, "--webhook-secret-file", filepath.Join(dir, "webhook.secret"))
	api := brokerAPI{t: t, url: "http://" + httpAddr, token: adminToken}

	// Two tenants over REST: the PAT of a-org's machine user, and the App
	// installation on c-org; each proves its credential on its own image.
	for _, body := range []string{
		fmt.Sprintf(`{"id":"a","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"pat":{"token":%q},
			"namespaces":["a-ns"],"registries":[%q],"probeImage":"%s/a-org/app:v1"}`, fx.PATOwner, fx.PATOwnerID, fx.PAT, registry, registry),
		fmt.Sprintf(`{"id":"c","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},
			"namespaces":["c-ns"],"registries":[%q],"probeImage":"%s/c-org/app:v1"}`, fx.AppOwner, fx.AppOwnerID, fx.InstallationID, registry, registry),
	} {
		if code, resp := api.call(http.MethodPost, "/v1/tenants", body); code != http.StatusOK {
			t.Fatalf("register tenant: %d %v", code, resp)
		}
	}

	secretConfig := func(ns string) []byte {
		s, err := kube.CoreV1().Secrets(ns).Get(ctx, "ghcr-secret", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return s.Data[corev1.DockerConfigJsonKey]
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("no pull Secret in a-ns", func() bool { return secretConfig("a-ns") != nil }))

	t.Run("a's Secret pulls a's image and not b's", func(t *testing.T) {
		cfg := secretConfig("a-ns")
		out, ok := crane(t, craneBin, cfg, "manifest", registry+"/a-org/app:v1")
		t.Logf("crane manifest a-org/app:v1 with a-ns's Secret: ok=%v", ok)
		if !ok {
			t.Errorf("pull of a-org/app:v1 failed: %s", out)
		}
		out, ok = crane(t, craneBin, cfg, "manifest", registry+"/b-org/app:v1")
		t.Logf("crane manifest b-org/app:v1 with a-ns's Secret: ok=%v (%s)", ok, firstLine(out))
		if ok {
			t.Error("a's Secret pulled b-org's image")
		}
	})

	t.Run("the App tenant is refused by the registry, and says why", func(t *testing.T) {
		testenv.Eventually(t, 30*time.Second, testenv.Holds("no PROBE_FAILED reached the backend", func() bool { return be.has("EVENT_TYPE_PROBE_FAILED", "c") }))
		st := api.status("c")
		lastErr, _ := st["lastError"].(map[string]any)
		t.Logf("tenant c: state %v, reason %v", st["state"], lastErr["reason"])
		if st["state"] != "CREDENTIAL_STATE_FAILED" || lastErr["reason"] != "REASON_APP_TOKEN_NOT_ACCEPTED" {
			t.Errorf("tenant c status %v", st)
		}
		if secretConfig("c-ns") != nil {
			t.Error("a credential that does not pull was published to c-ns")
		}
		if st := api.status("a"); st["state"] != "CREDENTIAL_STATE_READY" {
			t.Errorf("the PAT tenant is not ready beside it: %v", st)
		}
	})

	t.Run("rotation: short-lived App tokens are renewed before expiry and keep pulling", func(t *testing.T) {
		control("accept-app-tokens?accept=true")
		control("token-lifetime?duration=36s")
		if code, st := api.call(http.MethodPost, "/v1/tenants/c/credential:refresh", "{}"); code != http.StatusOK || st["state"] != "CREDENTIAL_STATE_READY" {
			t.Fatalf("refresh with App tokens accepted: %d %v", code, st)
		}
		testenv.Eventually(t, 30*time.Second, testenv.Holds("no pull Secret in c-ns", func() bool { return secretConfig("c-ns") != nil }))
		first := secretConfig("c-ns")
		expiry, err := time.Parse(time.RFC3339, fmt.Sprint(api.status("c")["expireTime"]))
		if err != nil {
			t.Fatal(err)
		}
		if out, ok := crane(t, craneBin, first, "manifest", registry+"/c-org/app:v1"); !ok {
			t.Fatalf("pull with the first App token: %s", out)
		}
		testenv.Eventually(t, 45*time.Second, testenv.Holds("the Secret was not rotated", func() bool {
			return !bytes.Equal(secretConfig("c-ns"), first)
		}))
		rotatedAt := time.Now()
		t.Logf("rotated %v before the old token's expiry", expiry.Sub(rotatedAt).Round(time.Second))
		if !rotatedAt.Before(expiry) {
			t.Errorf("rotated at %v, after the old token expired at %v", rotatedAt, expiry)
		}
		out, ok := crane(t, craneBin, secretConfig("c-ns"), "manifest", registry+"/c-org/app:v1")
		t.Logf("crane manifest c-org/app:v1 with the rotated Secret: ok=%v", ok)
		if !ok {
			t.Errorf("pull with the rotated Secret: %s", out)
		}
		if out, ok := crane(t, craneBin, secretConfig("a-ns"), "manifest", registry+"/a-org/app:v1"); !ok {
			t.Errorf("a's Secret stopped pulling: %s", out)
		}
	})

	t.Run("revocation and suspension reach the backend, signed", func(t *testing.T) {
		control("revoke?token=" + fx.PAT)
		control(fmt.Sprintf("suspend?installation=%d", fx.InstallationID))
		api.call(http.MethodPost, "/v1/tenants/a/credential:refresh", "{}")
		api.call(http.MethodPost, "/v1/tenants/c/credential:refresh", "{}")
		testenv.Eventually(t, 30*time.Second, testenv.Holds("CREDENTIAL_REVOKED did not reach the backend", func() bool { return be.has("EVENT_TYPE_CREDENTIAL_REVOKED", "a") }))
		testenv.Eventually(t, 30*time.Second, testenv.Holds("INSTALLATION_SUSPENDED did not reach the backend", func() bool {
			return be.has("EVENT_TYPE_INSTALLATION_SUSPENDED", "c")
		}))
		t.Log("backend received CREDENTIAL_REVOKED for a and INSTALLATION_SUSPENDED for c, both with a valid signature")
	})

	t.Run("a Pod with another owner's image is denied", func(t *testing.T) {
		code, resp := api.call(http.MethodPost, "/v1/tenants/a/pods:validate", fmt.Sprintf(
			`{"podSpec":{"containers":[{"name":"app","image":"%s/a-org/app:v1"},{"name":"sidecar","image":"%s/b-org/app:v1"}]}}`, registry, registry))
		if code != http.StatusOK || resp["allowed"] != false {
			t.Fatalf("pods:validate: %d %v", code, resp)
		}
		verdicts, _ := resp["containers"].([]any)
		var reasons []string
		for _, v := range verdicts {
			reasons = append(reasons, fmt.Sprint(v.(map[string]any)["reason"]))
		}
		t.Logf("pods:validate verdicts: %v", reasons)
		if len(reasons) != 2 || reasons[0] != "IMAGE_REASON_ALLOWED" || reasons[1] != "IMAGE_REASON_WRONG_OWNER" {
			t.Errorf("verdicts %v", resp)
		}
	})

	// The Secret of a namespace credbroker does not sync is none of its business.
	if _, err := kube.CoreV1().Secrets("credbroker").Get(ctx, "ghcr-secret", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a pull Secret in credbroker's own namespace: %v", err)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
