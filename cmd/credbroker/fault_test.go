package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
)

// TestASIGKILLMidRotationLosesNothing kills the leader with SIGKILL while a
// rotation it was asked for is in flight, and starts it again on the same
// state (the Kubernetes store): the tenant is READY again from the stored
// credential, its pull Secret never went away, and the kill left no
// spurious event behind.
func TestASIGKILLMidRotationLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx := context.Background()
	cp, gh, token, args := shopCluster(t)
	kube := cp.Admin
	p := startBinary(t, nil, args...)
	if code := post(t, p.httpURL+"/v1/tenants", token, shopTenant); code != http.StatusOK {
		t.Fatalf("create tenant: %d\n%s", code, p.Output())
	}
	waitForState(t, p, token, "CREDENTIAL_STATE_READY")
	// READY is the credential's state; the Syncer writes the Secret after
	// (and after marking the namespace for the admission policy).
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		_, err := kube.CoreV1().Secrets("shop").Get(ctx, "ghcr-secret", metav1.GetOptions{})
		return err == nil, fmt.Sprintf("no pull Secret yet: %v", err)
	})

	// A rotation is asked for, and the process dies while GitHub answers it.
	go func() { // the answer never comes: the process dies first
		req, _ := http.NewRequest(http.MethodPost, p.httpURL+"/v1/tenants/shop/credential:refresh", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return gh.Calls(emulator.RouteMintToken) >= 2, "the rotation never reached GitHub"
	})
	p.Kill(t)
	mintsAtKill := gh.Calls(emulator.RouteMintToken)

	if _, err := kube.CoreV1().Secrets("shop").Get(ctx, "ghcr-secret", metav1.GetOptions{}); err != nil {
		t.Fatalf("the pull Secret went with the broker: %v", err)
	}
	p = startBinary(t, nil, args...)
	waitForState(t, p, token, "CREDENTIAL_STATE_READY")
	if mints := gh.Calls(emulator.RouteMintToken) - mintsAtKill; mints > 1 {
		t.Errorf("the restart minted %d tokens, want at most one (a stored credential needs none)", mints)
	}
	events, err := kube.CoreV1().ConfigMaps("credbroker").List(ctx, metav1.ListOptions{LabelSelector: "credbroker.io/event"})
	if err != nil || len(events.Items) != 0 {
		t.Errorf("the kill left %d events (%v), want none: nothing failed", len(events.Items), err)
	}
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit %d\n%s", code, p.Output())
	}
}

// shopCluster is a control plane with namespace shop, GitHub with shop-org's
// App installation, an admin token, and the arguments that run the binary
// as a cluster deployment does: the Kubernetes store, leader election, an
// encryption key, the App.
func shopCluster(t *testing.T, extra ...string) (cp *testenv.ControlPlane, gh *emulator.Server, token string, args []string) {
	t.Helper()
	cp = testenv.Cluster(t, "credbroker", "shop")
	dir := t.TempDir()
	gh, keyFile := shopApp(t, dir)
	tokens, token := adminTokenFile(t)
	encKey := filepath.Join(dir, "enc.key")
	if err := os.WriteFile(encKey, bytes.Repeat([]byte{3}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--kubeconfig", cp.Kubeconfig(t, "credbroker-test"), "--store", "kubernetes", "--namespace", "credbroker", "--identity", "replica-1",
		"--github-url", gh.URL(), "--github-app-id", "77", "--github-app-key-file", keyFile, "--encryption-key-file", encKey,
		"--auth-token-file", tokens, "--data-dir", filepath.Join(dir, "data")}, extra...)
	return cp, gh, token, args
}
