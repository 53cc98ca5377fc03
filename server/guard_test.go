package server_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/auth/authtest"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func writePolicy(t *testing.T, content string) *auth.Policy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := auth.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func createWeb(t *testing.T, in *instance) {
	t.Helper()
	if _, _, err := in.registry.Create(context.Background(), broker.Tenant{ID: "web",
		Owner: broker.Owner{Login: "acme", ID: acmeOrgID, Type: broker.OwnerOrganization},
		App:   &broker.GitHubApp{InstallationID: acmeInstall}, Namespaces: []string{"web-prod"}}); err != nil {
		t.Fatal(err)
	}
}

// With TLS and a client CA, a client certificate is an identity over gRPC
// and over REST (where the HTTP server hands it to the Guard in the
// gateway's context); a certificate passed in headers, as metadata the
// gateway once forwarded, is not.
func TestClientCertificatesOverGRPCAndREST(t *testing.T) {
	ca := authtest.NewCA(t)
	policy := writePolicy(t, "bindings:\n  - subject: group:cert:readers-of-web\n    roles: [\"tenant-reader:web\"]\n")
	in := start(t, t.TempDir(), server.Services{}, withGuard(policy, auth.ClientCertificates{UsernamePrefix: "cert:", GroupsPrefix: "cert:"}),
		func(cfg *server.Config, _ *boltstore.Store, _ *slog.Logger) { cfg.TLS = ca.ServerTLS(t) })
	createWeb(t, in)
	ctx := context.Background()
	reader := ca.Client(t, "web-dashboard", "", "readers-of-web")

	dial := func(cert *tls.Certificate) credbrokerv1.TenantServiceClient {
		cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := grpc.NewClient(in.srv.GRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return credbrokerv1.NewTenantServiceClient(conn)
	}
	withCert, anonymous := dial(&reader), dial(nil)
	if _, err := withCert.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "web"}); err != nil {
		t.Errorf("gRPC GetTenant with the reader's certificate: %v", err)
	}
	if _, err := withCert.ListTenants(ctx, &credbrokerv1.ListTenantsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC ListTenants with the reader's certificate: %v, want PermissionDenied", err)
	}
	if _, err := anonymous.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "web"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a certificate: %v, want Unauthenticated", err)
	}

	httpsClient := func(cert *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	base := "https://" + in.srv.HTTPAddr().String()
	get := func(c *http.Client, path string, header http.Header) int {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(httpsClient(&reader), "/v1/tenants/web", nil); code != http.StatusOK {
		t.Errorf("REST GET tenant with the reader's certificate: %d", code)
	}
	if code := get(httpsClient(&reader), "/v1/tenants", nil); code != http.StatusForbidden {
		t.Errorf("REST list with the reader's certificate: %d, want 403", code)
	}
	forged := http.Header{
		"Grpc-Metadata-X-Credbroker-Client-Cert": {base64.RawStdEncoding.EncodeToString(reader.Leaf.Raw)},
		"Grpc-Metadata-X-Credbroker-Peer":        {"10.0.0.1:1"},
		"Grpc-Metadata-X-Credbroker-Forward-Sig": {"AAAA"},
	}
	if code := get(httpsClient(nil), "/v1/tenants/web", forged); code != http.StatusUnauthorized {
		t.Errorf("REST with a certificate in forged headers: %d, want 401", code)
	}
}

// An issuance is audited — caller, token hash, fingerprint — and neither
// the bearer token nor the issued token reaches the log.
func TestIssuanceIsAudited(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	createWeb(t, in)
	refresher := in.attachRefresher(t)
	ctx := bearer(context.Background(), matrixTokens["admin"].Token)
	if _, err := credbrokerv1.NewCredentialServiceClient(in.conn).RefreshCredential(ctx, &credbrokerv1.RefreshCredentialRequest{TenantId: "web"}); err != nil {
		t.Fatal(err)
	}
	code := restCall(t, in.baseURL, http.MethodGet, "/v1/tenants/web/credential:dockerconfigjson", "", matrixTokens["admin"].Token)
	if code != http.StatusOK {
		t.Fatalf("dockerconfigjson: %d", code)
	}
	cred, _, ok := refresher.Current("web")
	if !ok {
		t.Fatal("no credential")
	}
	logs := in.logs.String()
	var issuance string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"audit"`) && strings.Contains(line, "GetDockerConfig") {
			issuance = line
		}
	}
	wantHash := auth.TokenHash(matrixTokens["admin"].Token)[:12]
	for _, want := range []string{`"caller":"backend"`, `"fingerprint":"` + cred.Fingerprint() + `"`, `"token_sha256":"` + wantHash + `"`, `"tenant":"web"`, `"result":"OK"`, `"peer":"127.0.0.1:`} {
		if !strings.Contains(issuance, want) {
			t.Errorf("audit line %q lacks %s", issuance, want)
		}
	}
	for _, secret := range []string{cred.Token, matrixTokens["admin"].Token} {
		if strings.Contains(logs, secret) {
			t.Error("a secret reached the log")
		}
	}
	recs, err := in.store.AuditRecords(context.Background(), 10)
	if err != nil || len(recs) != 2 || recs[0].Fingerprint != cred.Fingerprint() || recs[1].Method != "/credbroker.v1.CredentialService/RefreshCredential" {
		t.Errorf("audit records %+v, %v", recs, err)
	}
}

func TestLimits(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	createWeb(t, in)
	ctx := bearer(context.Background(), matrixTokens["tenant-admin:web"].Token)
	creds := credbrokerv1.NewCredentialServiceClient(in.conn)
	var codesSeen []codes.Code
	for range 6 {
		_, err := creds.RefreshCredential(ctx, &credbrokerv1.RefreshCredentialRequest{TenantId: "web"})
		codesSeen = append(codesSeen, status.Code(err))
	}
	// No refresher runs here: allowed calls answer Unavailable.
	if codesSeen[4] != codes.Unavailable || codesSeen[5] != codes.ResourceExhausted {
		t.Errorf("six refreshes in a row: %v, want the sixth refused", codesSeen)
	}
	if code := restCall(t, in.baseURL, http.MethodPost, "/v1/tenants/web/credential:refresh", "{}", matrixTokens["tenant-admin:web"].Token); code != http.StatusTooManyRequests {
		t.Errorf("REST refresh past the limit: %d, want 429", code)
	}
	// Another caller has a bucket of its own.
	if _, err := creds.RefreshCredential(bearer(context.Background(), matrixTokens["admin"].Token),
		&credbrokerv1.RefreshCredentialRequest{TenantId: "web"}); status.Code(err) != codes.Unavailable {
		t.Errorf("the admin's first refresh: %v", err)
	}

	big := strings.Repeat("a", server.MaxRequestBytes+1)
	admin := bearer(context.Background(), matrixTokens["admin"].Token)
	_, err := credbrokerv1.NewImageServiceClient(in.conn).ValidateImage(admin, &credbrokerv1.ValidateImageRequest{TenantId: "web", Image: big})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a request over 1 MiB over gRPC: %v", status.Code(err))
	}
	if code := restCall(t, in.baseURL, http.MethodPost, "/v1/tenants/web/images:validate", `{"image":"`+big+`"}`, matrixTokens["admin"].Token); code != http.StatusBadRequest {
		t.Errorf("a request over 1 MiB over REST: %d, want 400", code)
	}
}

// The audit record of a registration names the tenant registered, over
// gRPC and REST.
func TestRegistrationIsAuditedWithItsTenant(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	ctx := bearer(context.Background(), matrixTokens["admin"].Token)
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("web")}); err != nil {
		t.Fatal(err)
	}
	if code := restCall(t, in.baseURL, http.MethodPost, "/v1/tenants", newTenantJSON, matrixTokens["admin"].Token); code != http.StatusOK {
		t.Fatalf("REST registration: %d", code)
	}
	recs, err := in.store.AuditRecords(context.Background(), 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("audit records %+v, %v", recs, err)
	}
	for i, want := range []string{"web-two", "web"} { // newest first
		if recs[i].Method != "/credbroker.v1.TenantService/CreateTenant" || recs[i].TenantID != want {
			t.Errorf("record %d: %+v, want CreateTenant of %s", i, recs[i], want)
		}
	}
}

// A flood of bad credentials is not a flood of log lines: a few a second
// are written, and a later line counts those left out.
func TestRefusalsAreLoggedSparingly(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	for i := range 500 {
		if code := restCall(t, in.baseURL, http.MethodGet, "/v1/tenants", "", fmt.Sprintf("made-up-%d", i)); code != http.StatusUnauthorized {
			t.Fatalf("a made-up token: %d", code)
		}
	}
	time.Sleep(300 * time.Millisecond) // the limiter lets the next line through
	_ = restCall(t, in.baseURL, http.MethodGet, "/v1/tenants", "", "made-up-last")
	lines := strings.Count(in.logs.String(), `"msg":"unauthenticated call"`)
	if lines < 1 || lines > 40 {
		t.Errorf("%d log lines for 501 refusals, want a handful", lines)
	}
	if !regexp.MustCompile(`"notLoggedSinceLast":[1-9]`).MatchString(in.logs.String()) {
		t.Errorf("no line counts the refusals left out")
	}
}
