package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"
	"github.com/credbroker/credbroker/registrytoken"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The binary serves the registry token service: a Pod's ServiceAccount
// token (reviewed by the real API server for the service's audience) gets
// pull on its tenant's owner's repositories, a token for another audience
// gets nothing, and the key set names the key that signed.
func TestServeAnswersAsARegistrysTokenService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	keyFile := filepath.Join(t.TempDir(), "registry-token.pem")
	if err := os.WriteFile(keyFile, testenv.ECKeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	robotKey := filepath.Join(t.TempDir(), "robot.key")
	if err := os.WriteFile(robotKey, []byte(strings.Repeat("r", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, _, token, args := shopCluster(t, "--registry-token-service", "registry.shop.internal", "--registry-token-key-files", keyFile,
		"--registry-robot-host", "registry.shop.internal:5000", "--registry-robot-key-file", robotKey)
	p := startBinary(t, nil, args...)
	if code := post(t, p.httpURL+"/v1/tenants", token, shopTenant); code != http.StatusOK {
		t.Fatalf("create tenant: %d\n%s", code, p.Output())
	}
	pod := testenv.PodOfServiceAccount(t, cp.Admin, "shop", "builder", "builder-0")
	askAs := func(user, password string) (int, map[string]any) {
		q := url.Values{"service": {"registry.shop.internal"}, "scope": {"repository:shop-org/app:pull", "repository:other-org/app:pull"}}
		req, _ := http.NewRequest(http.MethodGet, p.httpURL+registrytoken.TokenPath+"?"+q.Encode(), nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	ask := func(saToken string) (int, map[string]any) { return askAs("serviceaccount", saToken) }
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
	// The namespace's pull Secret carries its robot, which the service takes.
	var robot struct{ Username, Password string }
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		sec, err := cp.Admin.CoreV1().Secrets("shop").Get(context.Background(), "ghcr-secret", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var cfg struct {
			Auths map[string]struct{ Username, Password string }
		}
		_ = json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg)
		robot = cfg.Auths["registry.shop.internal:5000"]
		return robot.Password != "" && cfg.Auths["ghcr.io"].Password != "", testenv.Errorf("the Secret holds %v", cfg.Auths)
	})
	if code, m := askAs(robot.Username, robot.Password); code != http.StatusOK || m["scope"] != "repository:shop-org/app:pull" {
		t.Errorf("the shop namespace's robot: %d %v", code, m)
	}
	if code, _ := askAs(robot.Username, robot.Password+"x"); code != http.StatusUnauthorized {
		t.Errorf("a wrong robot password: %d, want 401", code)
	}
	// A builder's refresh token dies with its Pod and ServiceAccount,
	// though it has not expired: the binary asks the API server at the
	// refresh (hole 9 of issue 30).
	builder := testenv.PodOfServiceAccount(t, cp.Admin, "shop", "gone-builder", "gone-builder-0")
	postForm := func(form url.Values) (int, map[string]any) {
		form.Set("service", "registry.shop.internal")
		form.Set("client_id", "crane")
		form.Set("access_type", "offline")
		form.Set("scope", "repository:shop-org/app:pull")
		resp, err := http.PostForm(p.httpURL+registrytoken.TokenPath, form)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := postForm(url.Values{"grant_type": {"password"}, "username": {"serviceaccount"},
		"password": {testenv.ServiceAccountToken(t, cp.Admin, builder, "credbroker-registry", true)}})
	refreshToken, _ := m["refresh_token"].(string)
	if code != http.StatusOK || refreshToken == "" {
		t.Fatalf("the builder's password grant: %d %v", code, m)
	}
	if err := cp.Admin.CoreV1().Pods("shop").Delete(context.Background(), builder.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Admin.CoreV1().ServiceAccounts("shop").Delete(context.Background(), "gone-builder", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, m := postForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}); code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("a refresh after the builder's Pod and ServiceAccount were deleted: %d %v, want 400 invalid_grant", code, m)
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
	if out := p.Output(); strings.Contains(out, "eyJ") || strings.Contains(out, robot.Password) || !strings.Contains(out, `"result":"refused"`) {
		t.Error("a token or a robot's password reached the log, or a refusal left no audit line")
	}
}
