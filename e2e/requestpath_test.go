package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/registrytoken"
)

// TestRequestPath is the request half of `make bench` (CREDBROKER_SCALE=1):
// the built binary, held to the second CPU, serves a hundred namespaces of
// ten tenants while this process, held to the first (make bench runs it
// under taskset), calls it from 32 goroutines for 3 s per call: the
// backend's calls over gRPC and REST (an audited one too), the kubelet
// plugin's exchange, and an in-cluster registry's token requests (a
// namespace's robot, containerd's password grant). Each row carries the
// load average before and after it.
func TestRequestPath(t *testing.T) {
	if os.Getenv("CREDBROKER_SCALE") == "" {
		t.Skip("the request path is measured with make bench (CREDBROKER_SCALE=1)")
	}
	const tenants, perTenant = 10, 10
	var namespaces []string
	for i := range tenants * perTenant {
		namespaces = append(namespaces, fmt.Sprintf("rp-%03d", i))
	}
	cp := testenv.Cluster(t, namespaces...)
	gh, fx, err := emulator.NewDemo()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)

	dir := t.TempDir()
	const token = "bench-admin"
	for name, content := range map[string][]byte{
		"app.pem":            pemOf(fx.AppKey),
		"tokens.yaml":        fmt.Appendf(nil, "tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(token)),
		"registry-token.pem": testenv.ECKeyPEM(t),
		"robot.key":          []byte(strings.Repeat("r", 32)),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const service, robotHost = "registry.bench", "registry.bench:5000"
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	cmd, pinned := testenv.Pinned("1", testenv.Build(t, "../cmd/credbroker"), "serve",
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--data-dir", filepath.Join(dir, "data"),
		"--kubeconfig", cp.Kubeconfig(t, "credbroker"), "--leader-elect=false",
		"--github-url", gh.URL(), "--github-app-id", fmt.Sprint(fx.AppID), "--github-app-key-file", filepath.Join(dir, "app.pem"),
		"--auth-token-file", filepath.Join(dir, "tokens.yaml"),
		"--registry-token-service", service, "--registry-token-key-files", filepath.Join(dir, "registry-token.pem"),
		"--registry-robot-host", robotHost, "--registry-robot-key-file", filepath.Join(dir, "robot.key"))
	broker := testenv.Start(t, "credbroker", cmd)
	base := "http://" + httpAddr
	awaitOK(t, base+"/readyz")

	ctx := t.Context()
	for i := range tenants {
		body := fmt.Sprintf(`{"id":"t%02d","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},"pullMode":"PULL_MODE_BOTH","namespaces":["%s"]}`,
			i, fx.Org.Login, fx.Org.ID, fx.InstallationID, strings.Join(namespaces[i*perTenant:(i+1)*perTenant], `","`))
		if err := testenv.Call(ctx, http.DefaultClient, http.MethodPost, base+"/v1/tenants", token, body); err != nil {
			t.Fatal(err)
		}
	}
	var robot login
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		auths, err := pullAuths(ctx, cp.Admin, namespaces[0], "ghcr-secret")
		robot = auths[robotHost]
		return err == nil && robot.Password != "", testenv.Errorf("the pull Secret: %v", err)
	})
	pod := testenv.PodOfServiceAccount(t, cp.Admin, namespaces[0], "app", "app-0")
	saToken := testenv.ServiceAccountToken(t, cp.Admin, pod, "credbroker", true)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	images, credentials, tenantsAPI := credbrokerv1.NewImageServiceClient(conn), credbrokerv1.NewCredentialServiceClient(conn), credbrokerv1.NewTenantServiceClient(conn)
	exchange := credbrokerv1.NewPullCredentialServiceClient(conn)
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	rest := func(method, path, body string) func() error {
		return func() error { return testenv.Call(ctx, httpClient, method, base+path, token, body) }
	}
	image := "ghcr.io/" + fx.Org.Login + "/app:v1"
	robotForm := url.Values{"grant_type": {"password"}, "client_id": {"containerd-client"}, "service": {service}, "scope": {"repository:" + fx.Org.Login + "/app:pull"},
		"username": {robot.Username}, "password": {robot.Password}}.Encode()
	calls := []struct {
		name, transport string
		call            func() error
	}{
		{"ValidateImage", "gRPC", func() error {
			_, err := images.ValidateImage(authed, &credbrokerv1.ValidateImageRequest{TenantId: "t00", Image: image})
			return err
		}},
		{"ValidateImage", "REST", rest(http.MethodPost, "/v1/tenants/t00/images:validate", `{"image":"`+image+`"}`)},
		{"GetCredentialStatus", "gRPC", func() error {
			_, err := credentials.GetCredentialStatus(authed, &credbrokerv1.GetCredentialStatusRequest{TenantId: "t00"})
			return err
		}},
		{"GetCredentialStatus", "REST", rest(http.MethodGet, "/v1/tenants/t00/credential", "")},
		{"GetTenant", "gRPC", func() error {
			_, err := tenantsAPI.GetTenant(authed, &credbrokerv1.GetTenantRequest{Id: "t00"})
			return err
		}},
		{"GetTenant", "REST", rest(http.MethodGet, "/v1/tenants/t00", "")},
		// An issuance: its audit record is on disk before the answer.
		{"GetDockerConfig (audited)", "gRPC", func() error {
			_, err := credentials.GetDockerConfig(authed, &credbrokerv1.GetDockerConfigRequest{TenantId: "t00"})
			return err
		}},
		{"ExchangeServiceAccountToken (kubelet plugin)", "gRPC", func() error {
			_, err := exchange.ExchangeServiceAccountToken(ctx, &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: saToken, Image: image})
			return err
		}},
		{"registry token, robot password grant", "HTTP", func() error {
			return postForm(ctx, httpClient, base+registrytoken.TokenPath, robotForm)
		}},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe request path: the binary %s; 32 callers × 3 s per call; load average (1, 5, 15 min) before → after.\n\n",
		map[bool]string{true: "on CPU 1, the callers on CPU 0 (taskset)", false: "and the callers sharing the machine's CPUs (no taskset)"}[pinned])
	b.WriteString("| call | transport | req/s | p50 | p99 | load average |\n| --- | --- | ---: | ---: | ---: | --- |\n")
	cpu0, err := broker.Usage()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if err := c.call(); err != nil { // warm, and fail plainly
			t.Fatalf("%s over %s: %v", c.name, c.transport, err)
		}
		before := testenv.LoadAverage()
		rate, p50, p99 := load(t, c.call)
		fmt.Fprintf(&b, "| %s | %s | %.0f | %v | %v | %s → %s |\n", c.name, c.transport, rate, p50, p99, before, testenv.LoadAverage())
	}
	cpu1, err := broker.Usage()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "\ncredbroker's CPU during the %d calls' windows: %.1f s of %.0f s.\n", len(calls), (cpu1.CPU - cpu0.CPU).Seconds(), float64(len(calls))*3)
	t.Log(b.String())
}

// postForm POSTs an urlencoded form and wants 200.
func postForm(ctx context.Context, client *http.Client, target, form string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return testenv.Send(client, req)
}
