package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/github/emulator"
)

func TestFlagsComeFromCommandLineThenEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantGRPC string
		wantHTTP string
		wantDir  string
	}{
		{"defaults", []string{"--insecure"}, nil, ":9090", ":8080", "/var/lib/credbroker"},
		{"environment", nil, map[string]string{"CREDBROKER_GRPC_ADDR": ":1", "CREDBROKER_DATA_DIR": "/d", "CREDBROKER_INSECURE": "true"}, ":1", ":8080", "/d"},
		{"flag beats environment", []string{"--grpc-addr", ":2", "--insecure"}, map[string]string{"CREDBROKER_GRPC_ADDR": ":1"}, ":2", ":8080", "/var/lib/credbroker"},
		{"dev keeps to loopback and a temp dir", []string{"--dev"}, nil, "127.0.0.1:9090", "127.0.0.1:8080", ""},
		{"dev from the environment", nil, map[string]string{"CREDBROKER_DEV": "true", "CREDBROKER_HTTP_ADDR": "localhost:3"}, "127.0.0.1:9090", "localhost:3", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseServeFlags(tc.args, io.Discard, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if cfg.grpcAddr != tc.wantGRPC || cfg.httpAddr != tc.wantHTTP || cfg.dataDir != tc.wantDir {
				t.Errorf("got grpc %q http %q dir %q", cfg.grpcAddr, cfg.httpAddr, cfg.dataDir)
			}
		})
	}
	if _, err := parseServeFlags(nil, io.Discard, func(k string) string {
		return map[string]string{"CREDBROKER_SHUTDOWN_TIMEOUT": "soon"}[k]
	}); err == nil || !strings.Contains(err.Error(), "CREDBROKER_SHUTDOWN_TIMEOUT") {
		t.Errorf("a bad environment value: err %v, want one naming the variable", err)
	}
}

func TestStartupRefusesWhatWouldBeUnsafe(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a non-loopback listener without TLS", nil, "listener :9090 is reachable from other machines and has no TLS"},
		{"dev mode on a public address without TLS", []string{"--dev", "--http-addr", "0.0.0.0:8080"}, "listener 0.0.0.0:8080"},
		{"a certificate without its key", []string{"--tls-cert-file", "c.pem"}, "--tls-cert-file and --tls-key-file go together"},
		{"a client CA without TLS", []string{"--tls-client-ca-file", "ca.pem", "--insecure"}, "--tls-client-ca-file needs --tls-cert-file"},
		{"a webhook without a secret", []string{"--insecure", "--webhook-url", "https://backend/hook"}, "--webhook-url needs --webhook-secret-file"},
		{"App permissions that are not name=level", []string{"--insecure", "--github-app-permissions", "packages:read"}, `"packages:read" is not name=read`},
		{"an App id given as the client ID", []string{"--insecure", "--github-app-client-id", "1234", "--github-app-key-file", "k.pem"}, "--github-app-client-id: GitHub App client ID \"1234\" is a number"},
		{"an App client ID without the App's key", []string{"--insecure", "--github-app-client-id", "Iv23liAcme"}, "--github-app-client-id needs --github-app-key-file"},
		{"a webhook URL that is not one", []string{"--insecure", "--webhook-url", "backend/hook", "--webhook-secret-file", "s"}, "want an http(s) URL"},
		{"an admission policy mode that is not one", []string{"--insecure", "--admission-policy", "audit"}, `--admission-policy: admission policy mode "audit": want enforce or dry-run`},
		{"an admission policy without marks to read", []string{"--insecure", "--admission-policy", "enforce", "--mark-namespaces=false"}, "--admission-policy needs --mark-namespaces"},
		{"an admission webhook without TLS", []string{"--insecure", "--admission-webhook"}, "--admission-webhook needs --tls-cert-file"},
		{"a per-address exchange rate without a burst", []string{"--insecure", "--exchange-peer-burst", "0"}, "want both positive, or both 0"},
		{"a negative per-address exchange rate", []string{"--insecure", "--exchange-peer-rate", "-1"}, "want both positive, or both 0"},
		{"registry robots without the token service", []string{"--insecure", "--registry-robot-host", "registry:5000"}, "--registry-robot-host needs --registry-token-service"},
		{"registry robots without their key", []string{"--insecure", "--registry-token-service", "reg", "--registry-token-key-files", "k.pem", "--registry-robot-host", "registry:5000"}, "--registry-robot-host needs --registry-robot-key-file"},
		{"a public scope that is not one", []string{"--insecure", "--public-image-scopes", "docker.io/istio,ghcr.io"}, `"ghcr.io" is not <registry>/<owner>`},
		{"a mirror without its upstream", []string{"--insecure", "--image-mirrors", "mirror.example.com/ghcr.io"}, `want <prefix>=<upstream registry>`},
		{"a mirror of a path", []string{"--insecure", "--image-mirrors", "mirror.example.com=ghcr.io/acme"}, `"ghcr.io/acme" is not a registry host`},
		{"a public registry prefix that is not a path", []string{"--insecure", "--registry-public-prefixes", "platform/,Platform Images"}, `--registry-public-prefixes: registry public prefix "Platform Images"`},
		{"a public registry prefix with an empty component", []string{"--insecure", "--registry-public-prefixes", "platform//base"}, `registry public prefix "platform//base": want a repository path`},
		{"an empty OIDC user prefix", []string{"--insecure", "--oidc-username-prefix="}, "--oidc-username-prefix is empty"},
		{"an empty OIDC group prefix", []string{"--insecure", "--oidc-groups-prefix", " "}, "--oidc-groups-prefix is empty"},
		{"an empty client certificate user prefix", []string{"--insecure", "--tls-client-username-prefix="}, "--tls-client-username-prefix is empty"},
		{"an empty client certificate group prefix", []string{"--insecure", "--tls-client-groups-prefix="}, "--tls-client-groups-prefix is empty"},
		{"no namespace label prefix", []string{"--insecure", "--namespace-label-prefix", ""}, "--namespace-label-prefix \"\": want a DNS subdomain and a slash"},
		{"credbroker's marks as the namespace label prefix", []string{"--insecure", "--namespace-label-prefix", "credbroker.io/"}, "holds credbroker's own marks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServeFlags(tc.args, io.Discard, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// process is a running credbroker binary and the address of its REST API.
type process struct {
	*testenv.Process
	httpURL  string
	grpcAddr string
}

// startBinary runs credbroker with args and waits for its "serving" log line.
func startBinary(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(testenv.Build(t, "."), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{Process: testenv.Start(t, "credbroker", cmd)}
	line := p.WaitLine(t, 30*time.Second, `the "serving" log line`, func(line string) bool {
		var entry struct{ Msg string }
		return json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving"
	})
	var entry struct{ HTTP, GRPC string }
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatal(err)
	}
	p.httpURL, p.grpcAddr = "http://"+entry.HTTP, entry.GRPC
	return p
}

func TestDevModeServesAndStopsCleanlyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := filepath.Join(t.TempDir(), "not-yet-created")
	p := startBinary(t, nil, "serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", data)
	demoPAT, err := os.ReadFile(filepath.Join(data, "demo-pat"))
	if err != nil {
		t.Fatal(err)
	}
	adminToken, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(data, "admin.token")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("admin.token: %v, mode %v, want 0600", err, info.Mode())
	}
	if code := post(t, p.httpURL+"/v1/tenants", "", `{"id":"x"}`); code != http.StatusUnauthorized {
		t.Errorf("dev mode without the admin token: %d, want 401", code)
	}
	// The demo tenants are registered at start: listing them needs the
	// admin token.
	req, err := http.NewRequest(http.MethodGet, p.httpURL+"/v1/tenants", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+string(adminToken))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Tenants []struct{ ID, ProbeImage string }
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	_ = resp.Body.Close()
	if err != nil || len(list.Tenants) != 3 || list.Tenants[0].ID != "demo" || list.Tenants[1].ID != "demo-pat" || list.Tenants[2].ID != "demo-secretless" ||
		list.Tenants[0].ProbeImage == "" {
		t.Errorf("demo tenants: %+v, %v", list, err)
	}
	// The banner's refusal example: an installation on someone else's account.
	if code := post(t, p.httpURL+"/v1/tenants", string(adminToken),
		`{"id":"thief","owner":{"login":"acme","id":5,"type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":42}}`); code != http.StatusBadRequest {
		t.Errorf("the thief's tenant: %d, want 400", code)
	}
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0:\n%s", code, p.Output())
	}
	out := p.Output()
	for _, want := range []string{"DEV MODE", "curl -s -X POST http://127.0.0.1:", "images:validate", "grpcurl -plaintext 127.0.0.1:",
		`"msg":"shutdown complete"`, "token    " + string(adminToken), "Authorization: Bearer $CREDBROKER_TOKEN"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, string(demoPAT)) {
		t.Error("the PAT reached the output")
	}
}

func TestStartupRefusesStoredPATsWithoutTheirKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	gh := emulator.NewServer()
	defer gh.Close()
	gh.AddPAT("ghp_keyCheck123", emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: 1, Type: "User"}, Scopes: []string{"read:packages"}})
	tokens, token := adminTokenFile(t)
	common := []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", data, "--github-url", gh.URL(),
		"--auth-token-file", tokens}

	p := startBinary(t, nil, append(common, "--encryption-key-file", keyFile)...)
	if code := post(t, p.httpURL+"/v1/tenants", token,
		`{"id":"ci","owner":{"login":"octo","id":1,"type":"OWNER_TYPE_USER"},"pat":{"token":"ghp_keyCheck123"}}`); code != http.StatusOK {
		t.Fatalf("create: %d", code)
	}
	if code := p.Terminate(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	bin := testenv.Build(t, ".")
	out, err := exec.Command(bin, common...).CombinedOutput()
	if err == nil {
		t.Fatalf("started without the key that seals a stored PAT:\n%s", out)
	}
	for _, want := range []string{`tenant "ci"`, "no encryption key configured"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("startup error lacks %q: %s", want, out)
		}
	}
	if strings.Contains(string(out), "ghp_keyCheck123") {
		t.Error("the PAT reached the output")
	}
}

// adminTokenFile writes a token file with one admin token and returns its
// path and the token.
func adminTokenFile(t *testing.T) (path, token string) {
	t.Helper()
	token = "test-admin-token"
	path = filepath.Join(t.TempDir(), "tokens.yaml")
	content := fmt.Sprintf("tokens:\n  - name: test-admin\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(token))
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

// post sends a JSON body with a bearer token (none if empty) and returns the
// status.
func post(t *testing.T, url, token, body string) int {
	t.Helper()
	code, _ := testenv.REST(t, http.MethodPost, url, token, body)
	return code
}

func TestThePlainHTTPRegistriesAreLoopbackAndTheListedOnes(t *testing.T) {
	cfg, err := parseServeFlags([]string{"--insecure", "--plain-http-registries", "10.244.1.1:5000, registry.local:80"}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	plain := cfg.plainHTTPRegistry()
	for host, want := range map[string]bool{
		"10.244.1.1:5000": true, "registry.local:80": true, "localhost:5000": true, "127.0.0.1:41407": true,
		"10.244.1.1:5001": false, "registry.local": false, "ghcr.io": false,
	} {
		if got := plain(host); got != want {
			t.Errorf("plain HTTP to %s: %v, want %v", host, got, want)
		}
	}
}

// With --dev-registry-bin, the registry dev mode names is CNCF Distribution
// behind the emulator's realm, and it stops with dev mode.
func TestDevModeServesARealRegistry(t *testing.T) {
	testenv.Require(t, testenv.RegistryBinEnv)
	data := t.TempDir()
	p := startBinary(t, nil, "serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", data,
		"--dev-registry-bin", os.Getenv(testenv.RegistryBinEnv))
	_, line, _ := strings.Cut(p.Output(), "\n  registry ") // the banner is out before "serving"
	line, _, _ = strings.Cut(line, "\n")
	host := strings.Fields(line + " ?")[0]
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `realm="http://`+host+`/token"`) {
		t.Errorf("GET /v2/ of %s: %d %v, want Distribution's 401 with the realm on the same host", host, resp.StatusCode, resp.Header)
	}
	if !strings.Contains(line, "CNCF Distribution") {
		t.Errorf("the banner says %q", line)
	}
	if code := p.Terminate(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0:\n%s", code, p.Output())
	}
	config, err := os.ReadFile(filepath.Join(data, "registry", "config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := strings.Cut(string(config), "addr: ")
	addr, _, _ = strings.Cut(addr, "\n")
	if conn, err := net.Dial("tcp", addr); err == nil {
		_ = conn.Close()
		t.Errorf("Distribution still listens on %s after dev mode stopped", addr)
	}
}
