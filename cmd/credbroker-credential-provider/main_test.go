package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// broker answers the exchange as credbroker does for one good token; the
// real exchange (TokenReview, tenants) is tested in api, broker and on a
// real node (e2e).
type broker struct {
	credbrokerv1.UnimplementedPullCredentialServiceServer
	auth map[string]*credbrokerv1.RegistryAuth
}

func (b broker) ExchangeServiceAccountToken(_ context.Context, req *credbrokerv1.ExchangeServiceAccountTokenRequest) (*credbrokerv1.ExchangeServiceAccountTokenResponse, error) {
	for token, reason := range map[string]string{"secret-mode-token": "PULL_MODE_SECRET", "public-image-token": "PUBLIC_IMAGE"} {
		if req.GetServiceAccountToken() == token {
			st, _ := status.New(codes.PermissionDenied, "no credential goes with it").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "credbroker.io"})
			return nil, st.Err()
		}
	}
	if req.GetServiceAccountToken() != "good-token" {
		return nil, status.Error(codes.Unauthenticated, "the API server does not accept the ServiceAccount token")
	}
	return &credbrokerv1.ExchangeServiceAccountTokenResponse{TenantId: "a", Auth: b.auth, CacheDuration: durationpb.New(time.Hour)}, nil
}

func serveBroker(t *testing.T, b broker) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	credbrokerv1.RegisterPullCredentialServiceServer(s, b)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

// silent accepts connections and never answers: a broker that hangs.
func silent(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return l.Addr().String()
}

func request(apiVersion, token string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"CredentialProviderRequest","image":"ghcr.io/acme/app","serviceAccountToken":"` + token + `"}`
}

const v1 = "credentialprovider.kubelet.k8s.io/v1"

// TestThePluginAnswersTheKubeletOrFailsClearly runs the plugin as the
// kubelet does, on good and bad input: every failure is one line on
// stderr, an exit status, and nothing on stdout.
func TestThePluginAnswersTheKubeletOrFailsClearly(t *testing.T) {
	good := serveBroker(t, broker{auth: map[string]*credbrokerv1.RegistryAuth{"ghcr.io/acme": {Username: "x-access-token", Password: "ghs_secret"}}})
	bare := serveBroker(t, broker{auth: map[string]*credbrokerv1.RegistryAuth{"ghcr.io": {Username: "x", Password: "ghs_secret"}}})
	hanging := silent(t)
	tests := []struct {
		name     string
		env      map[string]string
		stdin    string
		wantExit int
		wantErr  string
	}{
		{"a good token", map[string]string{envBroker: good}, request(v1, "good-token"), 0, ""},
		{"a tenant that pulls with its Secret", map[string]string{envBroker: good}, request(v1, "secret-mode-token"), 0, ""},
		{"an image every tenant may run", map[string]string{envBroker: good}, request(v1, "public-image-token"), 0, ""},
		{"malformed stdin", map[string]string{envBroker: good}, `{"apiVersion":`, exitBadInput, "not a CredentialProviderRequest"},
		{"an unknown apiVersion", map[string]string{envBroker: good}, request("credentialprovider.kubelet.k8s.io/v1beta1", "good-token"), exitBadInput, "this plugin speaks credentialprovider.kubelet.k8s.io/v1"},
		{"no token", map[string]string{envBroker: good}, request(v1, ""), exitBadInput, "carries no serviceAccountToken"},
		{"a token the broker refuses", map[string]string{envBroker: good}, request(v1, "vault-token"), exitDenied, "Unauthenticated"},
		{"no broker configured", nil, request(v1, "good-token"), exitBadInput, "no broker address"},
		{"a broker nobody listens on", map[string]string{envBroker: "127.0.0.1:1"}, request(v1, "good-token"), exitDenied, "Unavailable"},
		{"a broker that does not answer", map[string]string{envBroker: hanging, envTimeout: "1s"}, request(v1, "good-token"), exitDenied, "DeadlineExceeded"},
		{"a broker that answers for a whole registry", map[string]string{envBroker: bare}, request(v1, "good-token"), exitDenied, "refusing it"},
		{"a bad timeout", map[string]string{envBroker: good, envTimeout: "2m"}, request(v1, "good-token"), exitBadInput, "inside the kubelet's one minute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{envPlaintext: "true", envMaxCache: "20s"}
			for k, v := range tc.env {
				env[k] = v
			}
			var stdout, stderr strings.Builder
			start := time.Now()
			exit := run(context.Background(), nil, strings.NewReader(tc.stdin), &stdout, &stderr, func(k string) string { return env[k] })
			if exit != tc.wantExit || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d saying %q", exit, stderr.String(), tc.wantExit, tc.wantErr)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if exit != 0 {
				if stdout.Len() > 0 || strings.Count(stderr.String(), "\n") != 1 || strings.Contains(stderr.String(), "ghs_secret") {
					t.Errorf("a failure printed stdout %q, stderr %q: want one line on stderr and no credential", stdout.String(), stderr.String())
				}
				return
			}
			var resp credentialproviderv1.CredentialProviderResponse
			if err := json.Unmarshal([]byte(stdout.String()), &resp); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tc.stdin, "secret-mode-token") || strings.Contains(tc.stdin, "public-image-token") {
				if resp.APIVersion != v1 || len(resp.Auth) != 0 || resp.CacheDuration == nil || resp.CacheDuration.Duration != 0 || stderr.Len() > 0 {
					t.Errorf("%+v, stderr %q: want no credential, not cached, and nothing said", resp, stderr.String())
				}
				return
			}
			if resp.APIVersion != v1 || resp.Kind != "CredentialProviderResponse" || resp.CacheKeyType != credentialproviderv1.ImagePluginCacheKeyType ||
				resp.CacheDuration.Duration != 20*time.Second || len(resp.Auth) != 1 || resp.Auth["ghcr.io/acme"].Password != "ghs_secret" {
				t.Errorf("response %+v: want the owner's path only, cached for the plugin's 20s bound rather than the broker's hour", resp)
			}
		})
	}
}

// TestInstallWritesTheKubeletsConfig: the install mode writes the plugin
// and a CredentialProviderConfig asking for the Pod's token.
func TestInstallWritesTheKubeletsConfig(t *testing.T) {
	root := t.TempDir()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	exit := run(context.Background(), []string{"install", "--host-root", root, "--bin-dir", "/opt/cp", "--config", "/etc/kubelet/cp.yaml",
		"--broker", "10.96.0.20:9090", "--server-name", "credbroker.credbroker.svc", "--ca-file", ca}, nil, nil, &stderr, func(string) string { return "" })
	if exit != 0 {
		t.Fatalf("install: %d %s", exit, stderr.String())
	}
	if st, err := os.Stat(filepath.Join(root, "/opt/cp", ProviderName)); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("plugin not installed executable: %v", err)
	}
	config, err := os.ReadFile(filepath.Join(root, "/etc/kubelet/cp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: CredentialProviderConfig", "name: " + ProviderName, "serviceAccountTokenAudience: credbroker",
		"cacheType: Token", "requireServiceAccount: true", "- ghcr.io", "value: 10.96.0.20:9090", "value: /etc/kubelet/credbroker-ca.crt",
		"value: credbroker.credbroker.svc"} {
		if !strings.Contains(string(config), want) {
			t.Errorf("config lacks %q:\n%s", want, config)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/kubelet/credbroker-ca.crt")); err != nil {
		t.Errorf("CA not copied: %v", err)
	}
	if exit := run(context.Background(), []string{"install", "--bin-dir", "relative"}, nil, nil, &stderr, func(string) string { return "x" }); exit != exitBadInput {
		t.Errorf("a relative bin dir: exit %d", exit)
	}
}

// TestTheRegistryTokenModeHandsThePodsTokenToTheRegistry: for an
// in-cluster registry the plugin asks nobody and answers the image's
// registry with the Pod's token, uncached; install adds that provider, with
// its own audience, beside the exchange's.
func TestTheRegistryTokenModeHandsThePodsTokenToTheRegistry(t *testing.T) {
	env := map[string]string{envRegistryToken: "true"}
	var stdout, stderr strings.Builder
	req := strings.Replace(request(v1, "pod-token"), `"image":"ghcr.io/acme/app"`, `"image":"registry.internal:5000/acme/app:v1"`, 1)
	if exit := run(context.Background(), nil, strings.NewReader(req), &stdout, &stderr, func(k string) string { return env[k] }); exit != 0 {
		t.Fatalf("exit %d: %s", exit, stderr.String())
	}
	var resp credentialproviderv1.CredentialProviderResponse
	if err := json.Unmarshal([]byte(stdout.String()), &resp); err != nil {
		t.Fatal(err)
	}
	if got := resp.Auth["registry.internal:5000"]; len(resp.Auth) != 1 || got.Username != "serviceaccount" || got.Password != "pod-token" || resp.CacheDuration.Duration != 0 {
		t.Errorf("response %+v: want the Pod's token for the registry, not cached", resp)
	}
	stdout.Reset()
	if exit := run(context.Background(), nil, strings.NewReader(request(v1, "")), &stdout, &stderr, func(k string) string { return env[k] }); exit != exitBadInput || stdout.Len() > 0 {
		t.Errorf("no token: exit %d, stdout %q", exit, stdout.String())
	}

	root := t.TempDir()
	install := func(args ...string) int {
		return run(context.Background(), append([]string{"install", "--host-root", root, "--bin-dir", "/opt/cp", "--config", "/etc/kubelet/cp.yaml", "--broker", "10.96.0.20:9090"}, args...),
			nil, nil, &stderr, func(string) string { return "" })
	}
	if exit := install("--registry-token-match-images", "registry.internal:5000"); exit != 0 {
		t.Fatalf("install: %d %s", exit, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(root, "/opt/cp", RegistryTokenProviderName)); err != nil {
		t.Fatalf("the registry's provider is not installed: %v", err)
	}
	config, err := os.ReadFile(filepath.Join(root, "/etc/kubelet/cp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: " + ProviderName, "name: " + RegistryTokenProviderName, "- registry.internal:5000",
		"serviceAccountTokenAudience: credbroker-registry", "name: " + envRegistryToken} {
		if !strings.Contains(string(config), want) {
			t.Errorf("config lacks %q:\n%s", want, config)
		}
	}
	if exit := install("--registry-token-match-images", "registry.internal:5000", "--registry-token-audience", "credbroker"); exit != exitBadInput {
		t.Errorf("the exchange's audience for the registry: exit %d, want refused", exit)
	}
}
