package main

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
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/notify"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// TestServeSyncsIntoACluster runs the binary the way a cluster deployment
// does — Kubernetes tenant store, leader election, GitHub App — against a
// real kube-apiserver, and checks that registering a tenant over REST puts
// its pull Secret into its namespace and the tenant into the store.
func TestServeSyncsIntoACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx := context.Background()
	// The backend's webhook receiver checks the signature as a backend would.
	webhookSecret, ghWebhookSecret := []byte("backend-secret"), []byte("github-secret")
	received := make(chan map[string]any, 16)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(notify.HeaderSignature) != notify.Sign(webhookSecret, r.Header.Get(notify.HeaderTimestamp), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		received <- ev
	}))
	defer backend.Close()
	dir := t.TempDir()
	webhookSecretFile, ghSecretFile := filepath.Join(dir, "webhook"), filepath.Join(dir, "gh-webhook")
	for file, data := range map[string][]byte{webhookSecretFile: webhookSecret, ghSecretFile: ghWebhookSecret} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp, gh, token, args := shopCluster(t, "--webhook-url", backend.URL, "--webhook-secret-file", webhookSecretFile,
		"--github-webhook-secret-file", ghSecretFile)
	kube := cp.Admin
	p := startBinary(t, nil, args...)
	if code := post(t, p.httpURL+"/v1/tenants", token, shopTenant); code != http.StatusOK {
		t.Fatalf("create tenant: %d\n%s", code, p.Output())
	}

	deadline := time.Now().Add(30 * time.Second)
	var secret *corev1.Secret
	for secret == nil {
		if s, err := kube.CoreV1().Secrets("shop").Get(ctx, "ghcr-secret", metav1.GetOptions{}); err == nil {
			secret = s
		} else if time.Now().After(deadline) {
			t.Fatalf("no pull Secret in namespace shop: %v\n%s", err, p.Output())
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if secret.Type != corev1.SecretTypeDockerConfigJson || !strings.Contains(string(secret.Data[corev1.DockerConfigJsonKey]), `"x-access-token"`) {
		t.Errorf("pull Secret: type %s, data %d bytes", secret.Type, len(secret.Data[corev1.DockerConfigJsonKey]))
	}
	if _, err := kube.CoreV1().Secrets("credbroker").Get(ctx, "credbroker-tenant-shop", metav1.GetOptions{}); err != nil {
		t.Errorf("tenant not in the Kubernetes store: %v", err)
	}
	if _, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{}); err != nil {
		t.Errorf("no leader Lease: %v", err)
	}
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit %d\n%s", code, p.Output())
	}
	logs := p.Output()

	// A restarted broker publishes the stored credential: no second mint.
	p = startBinary(t, nil, args...)
	waitForState(t, p, token, "CREDENTIAL_STATE_READY")
	if mints := gh.Calls(emulator.RouteMintToken); mints != 1 {
		t.Errorf("%d mints across a restart, want 1", mints)
	}

	// GitHub says the installation was suspended: the backend hears at once.
	gh.SuspendInstallation(5)
	payload := []byte(`{"action":"suspend","installation":{"id":5,"account":{"login":"shop-org","id":500}}}`)
	req, err := http.NewRequest(http.MethodPost, p.httpURL+"/webhooks/github", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "installation")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	mac := hmac.New(sha256.New, ghWebhookSecret) // GitHub's scheme: the body alone
	mac.Write(payload)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("GitHub webhook: %d, want 202 (stored, acted on apart)\n%s", resp.StatusCode, p.Output())
	}
	select {
	case ev := <-received:
		if ev["type"] != "EVENT_TYPE_INSTALLATION_SUSPENDED" || ev["tenantId"] != "shop" || ev["severity"] != "SEVERITY_CRITICAL" {
			t.Errorf("backend received %v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the backend heard nothing\n%s", p.Output())
	}
	waitForState(t, p, token, "CREDENTIAL_STATE_FAILED")
	events, err := kube.CoreV1().ConfigMaps("credbroker").List(ctx, metav1.ListOptions{LabelSelector: "credbroker.io/event"})
	if err != nil || len(events.Items) != 1 {
		t.Errorf("event log in the cluster: %d ConfigMaps, %v", len(events.Items), err)
	}
	audit, err := kube.CoreV1().ConfigMaps("credbroker").List(ctx, metav1.ListOptions{LabelSelector: "credbroker.io/audit"})
	if err != nil || len(audit.Items) != 1 || !strings.Contains(audit.Items[0].Data["record.json"], `"caller":"test-admin"`) {
		t.Errorf("audit trail in the cluster: %+v, %v", audit.Items, err)
	}
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit %d\n%s", code, p.Output())
	}
	logs += p.Output()
	for _, tok := range gh.Tokens() {
		if strings.Contains(logs, tok) {
			t.Error("an installation token reached the log")
		}
	}
}

// shopApp is GitHub with App 77 installed (installation 5) on shop-org
// (id 500), and the file holding the App's key.
func shopApp(t *testing.T, dir string) (*emulator.Server, string) {
	t.Helper()
	gh := emulator.NewServer()
	t.Cleanup(gh.Close)
	key, keyPEM, err := emulator.NewAppKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	gh.AddApp(77, &key.PublicKey)
	gh.AddInstallation(emulator.AppInstallation{ID: 5, AppID: 77, Account: emulator.Account{Login: "shop-org", ID: 500, Type: "Organization"},
		Permissions: map[string]string{"packages": "read"}})
	return gh, keyFile
}

// shopTenant registers shop-org's tenant, bound to namespace shop.
const shopTenant = `{"id":"shop","owner":{"login":"shop-org","id":500,"type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":5},"namespaces":["shop"]}`

// waitForState polls the tenant's credential status until it is state.
func waitForState(t *testing.T, p *process, token, state string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body := testenv.REST(t, http.MethodGet, p.httpURL+"/v1/tenants/shop/credential", token, "")
		var st struct{ State string }
		_ = json.Unmarshal(body, &st)
		return st.State == state, testenv.Errorf("credential is %q, never reached %s\n%s", st.State, state, p.Output())
	})
}

// TestDevModeAnswersTheCredentialProvider: dev mode with a cluster (what
// make run starts) answers the kubelet's exchange from its embedded store:
// the demo tenant in pull mode PROVIDER gets its credential for a Pod of
// its namespace, a Pod elsewhere gets none.
func TestDevModeAnswersTheCredentialProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx := context.Background()
	cp := testenv.Cluster(t, "demo-secretless", "elsewhere")
	p := startBinary(t, nil, "serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--kubeconfig", cp.Kubeconfig(t, "credbroker-dev"))
	token := func(ns string) string {
		t.Helper()
		return testenv.ServiceAccountToken(t, cp.Admin, testenv.PodOfServiceAccount(t, cp.Admin, ns, "app", "hello"), "credbroker", true)
	}
	_, rest, _ := strings.Cut(p.Output(), "\n  registry ")
	registry := strings.Fields(rest + " ?")[0]
	image := registry + "/octo-org/hello"
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	exchange := credbrokerv1.NewPullCredentialServiceClient(conn)
	mine := token("demo-secretless")
	var got *credbrokerv1.ExchangeServiceAccountTokenResponse
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got, err = exchange.ExchangeServiceAccountToken(ctx, &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: mine, Image: image})
		return err == nil, fmt.Sprint("the demo tenant's Pod got no credential: ", err)
	})
	if a := got.GetAuth()[registry+"/octo-org"]; got.GetTenantId() != "demo-secretless" || a.GetUsername() != "octo-org-bot" || a.GetPassword() == "" {
		t.Errorf("exchange: tenant %q auth %v", got.GetTenantId(), got.GetAuth())
	}
	_, err = exchange.ExchangeServiceAccountToken(ctx, &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: token("elsewhere"), Image: image})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "bound to no tenant") {
		t.Errorf("a Pod of an unbound namespace: %v", err)
	}
}
