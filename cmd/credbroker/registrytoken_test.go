package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"
	"github.com/credbroker/credbroker/registrytoken"
)

// The binary serves the registry token service: a Pod's ServiceAccount
// token (reviewed by the real API server for the service's audience) gets
// pull on its tenant's owner's repositories, a token for another audience
// gets nothing, and the key set names the key that signed.
func TestServeAnswersAsARegistrysTokenService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "registry-token.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, _, token, args := shopCluster(t, "--registry-token-service", "registry.shop.internal", "--registry-token-key-files", keyFile)
	p := startBinary(t, nil, args...)
	if code := post(t, p.httpURL+"/v1/tenants", token, shopTenant); code != http.StatusOK {
		t.Fatalf("create tenant: %d\n%s", code, p.Output())
	}
	pod := testenv.PodOfServiceAccount(t, cp.Admin, "shop", "builder", "builder-0")
	ask := func(saToken string) (int, map[string]any) {
		q := url.Values{"service": {"registry.shop.internal"}, "scope": {"repository:shop-org/app:pull", "repository:other-org/app:pull"}}
		req, _ := http.NewRequest(http.MethodGet, p.httpURL+registrytoken.TokenPath+"?"+q.Encode(), nil)
		req.SetBasicAuth("serviceaccount", saToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	var granted string
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { // the replica's tenant cache fills
		code, m := ask(testenv.ServiceAccountToken(t, cp.Admin, pod, "credbroker-registry", true))
		granted, _ = m["scope"].(string)
		return code == http.StatusOK && granted != "", testenv.Errorf("%d %v", code, m)
	})
	if granted != "repository:shop-org/app:pull" {
		t.Errorf("granted %q, want shop-org's repository only", granted)
	}
	if code, m := ask(testenv.ServiceAccountToken(t, cp.Admin, pod, "credbroker", true)); code != http.StatusUnauthorized || m["error"] != "invalid_grant" {
		t.Errorf("a token for another audience: %d %v", code, m)
	}
	resp, err := http.Get(p.httpURL + registrytoken.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var jwks struct{ Keys []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] == "" || jwks.Keys[0]["d"] != nil {
		t.Errorf("key set %v (%v): want the one public key, with its id", jwks, err)
	}
	if strings.Contains(p.Output(), "eyJ") {
		t.Error("a token reached the log")
	}
}
