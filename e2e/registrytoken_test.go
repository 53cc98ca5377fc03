package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
	"github.com/credbroker/credbroker/registrytoken"
)

// tokenPods is a TokenReview stand-in: a ServiceAccount token per Pod.
type tokenPods map[string]broker.PodIdentity

func (p tokenPods) PodOf(_ context.Context, token string) (broker.PodIdentity, error) {
	if pod, ok := p[token]; ok {
		return pod, nil
	}
	return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenRejected, Msg: "the API server does not accept the token"}
}

// namespaceTenants binds namespaces to tenants.
type namespaceTenants map[string]broker.Tenant

func (n namespaceTenants) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	t, ok := n[ns]
	return t, ok, nil
}

// runDistribution starts the registry binary on addr and storage with
// auth (a YAML fragment, or none) and returns a stop function.
func runDistribution(t *testing.T, bin, addr, storage, auth string) func() {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  secret: e2e-only\n%s", storage, addr, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("registry log:\n%s", log)
		}
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return true, ""
	})
	return stop
}

// TestARegistryTrustsCredbrokersTokens: a real CNCF Distribution registry
// whose token realm is credbroker's token service, and crane as the
// client: a namespace's Pod pulls its tenant's images and its namespace's,
// anyone pulls the public prefix, its tenant allowing it, it pushes under
// the tenant's owner and its namespace; and the rest — another tenant's
// image, a push elsewhere, the catalog, a token the API server refuses —
// is refused by the registry itself, with the token the service signed.
func TestARegistryTrustsCredbrokersTokens(t *testing.T) {
	registryBin, craneBin := requirePeers(t)
	keys, err := registrytoken.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	const service = "registry.platform.internal"
	acme := broker.Tenant{ID: "web", Owner: broker.Owner{Login: "Acme", ID: 1}, RegistryPush: true}
	svc, err := registrytoken.New(registrytoken.Config{Service: service, Issuer: "credbroker", PublicPrefixes: []string{"platform/"}}, keys,
		tokenPods{"token-of-a-pod-in-web": {Namespace: "web", ServiceAccount: "default", Pod: "app"}},
		namespaceTenants{"web": acme}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	realm := httptest.NewServer(svc.Handler())
	t.Cleanup(realm.Close)
	// By name: crane refuses a realm at a private IP literal (SSRF) unless
	// it is the registry's own host:port.
	realmURL := strings.Replace(realm.URL, "127.0.0.1", "localhost", 1) + registrytoken.TokenPath

	// The images, pushed by a registry without auth over the same storage.
	storage := t.TempDir()
	open := freeAddr(t)
	stop := runDistribution(t, registryBin, open, storage, "")
	for _, repo := range []string{"acme/app", "cluster.local/web/tool", "shop-org/app", "platform/base"} {
		if out, ok := crane(t, craneBin, []byte(`{}`), "append", "-f", emptyLayer(t), "-t", open+"/"+repo+":v1"); !ok {
			t.Fatalf("seed %s: %s", repo, out)
		}
	}
	stop()

	jwks, err := json.Marshal(keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	host := freeAddr(t)
	runDistribution(t, registryBin, host, storage, fmt.Sprintf(
		"auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: credbroker\n    jwks: %s\n", realmURL, service, jwksFile))

	pod := dockerConfig(host, "serviceaccount", "token-of-a-pod-in-web")
	for _, tc := range []struct {
		name   string
		config []byte
		args   []string
		ok     bool
	}{
		{"its tenant's owner's image", pod, []string{"manifest", host + "/acme/app:v1"}, true},
		{"its namespace's image", pod, []string{"manifest", host + "/cluster.local/web/tool:v1"}, true},
		{"a public image, with credentials", pod, []string{"manifest", host + "/platform/base:v1"}, true},
		{"a public image, anonymously", []byte(`{}`), []string{"manifest", host + "/platform/base:v1"}, true},
		{"another tenant's image", pod, []string{"manifest", host + "/shop-org/app:v1"}, false},
		{"its own image, anonymously", []byte(`{}`), []string{"manifest", host + "/acme/app:v1"}, false},
		{"a token the API server refuses", dockerConfig(host, "serviceaccount", "forged"), []string{"manifest", host + "/acme/app:v1"}, false},
		{"a push under its owner (its tenant allows it)", pod, []string{"copy", host + "/acme/app:v1", host + "/acme/copy:v1"}, true},
		{"a push under its namespace", pod, []string{"copy", host + "/acme/app:v1", host + "/cluster.local/web/copy:v1"}, true},
		{"a push under another tenant's owner", pod, []string{"copy", host + "/acme/app:v1", host + "/shop-org/app:v2"}, false},
		{"a push under the public prefix", pod, []string{"copy", host + "/acme/app:v1", host + "/platform/base:v2"}, false},
		{"the catalog", pod, []string{"catalog", host}, false},
	} {
		out, ok := crane(t, craneBin, tc.config, tc.args...)
		if ok != tc.ok {
			t.Errorf("%s: crane %s: ok %v, want %v\n%s", tc.name, strings.Join(tc.args, " "), ok, tc.ok, out)
		} else if !ok {
			t.Logf("%s: %s", tc.name, lastLine(out))
		}
	}
}

func emptyLayer(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	writeTar(f, "hello.txt", []byte("hello\n"))
	_ = f.Close()
	return path
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
