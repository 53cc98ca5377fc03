package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/auth/authtest"
	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// attempt is one call a hostile caller makes, over gRPC and over REST.
type attempt struct {
	name   string
	method string        // full gRPC method
	req    proto.Message // its request
	resp   proto.Message // an empty response of its type
	verb   string        // the REST call
	path   string
	body   string
	want   codes.Code // what both must answer
	field  string     // the field the refusal must name, if any
}

// updateWeb is an attempt to change tenant web's fields (proto names) to
// what body (REST JSON) says.
func updateWeb(name, body string, want codes.Code, fields ...string) attempt {
	tn := &credbrokerv1.Tenant{}
	if err := protojson.Unmarshal([]byte(body), tn); err != nil {
		panic(fmt.Sprintf("%s: %v", name, err))
	}
	tn.Id = "web"
	field := ""
	if want != codes.OK {
		field = fields[0]
	}
	return attempt{name: name, method: "/credbroker.v1.TenantService/UpdateTenant",
		req:  &credbrokerv1.UpdateTenantRequest{Tenant: tn, UpdateMask: &fieldmaskpb.FieldMask{Paths: fields}},
		resp: &credbrokerv1.Tenant{}, verb: http.MethodPatch, path: "/v1/tenants/web", body: body, want: want, field: field}
}

// TestAHostileTenant plays the tenant-admin of tenant web as each kind of
// identity a platform hands out — a token-file entry, an OIDC user and a
// Kubernetes ServiceAccount — against the real binary (TokenReview by a
// real API server, ID tokens verified against a real OpenID discovery), and
// tries every escalation of docs/security.md over gRPC and REST: each is
// refused with PERMISSION_DENIED or INVALID_ARGUMENT naming the field, the
// tenants are unchanged after, and admin can still make each change.
func TestAHostileTenant(t *testing.T) {
	testenv.Require(t, testenv.AssetsEnv)
	ctx := context.Background()
	dir := t.TempDir()
	credbroker, githubemu := testenv.Build(t, "../cmd/credbroker"), testenv.Build(t, "./githubemu")
	fx, _ := startEmulator(t, githubemu)
	cp := testenv.Cluster(t, "credbroker", "web-ns", "shop-ns")
	kube := cp.Admin
	issuer := authtest.NewIssuer(t)

	// The identities: web's tenant-admin three ways, the admin backend, and
	// two OIDC users dressed as the admin.
	if _, err := kube.CoreV1().ServiceAccounts("web-ns").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saToken := func(audience string) string {
		tr, err := kube.CoreV1().ServiceAccounts("web-ns").CreateToken(ctx, "ci", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	idToken := func(email string, groups ...string) string {
		now := time.Now()
		return issuer.Token(t, map[string]any{"iss": issuer.URL, "aud": "credbroker", "sub": email, "email": email,
			"groups": groups, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	}
	const adminToken, webCIToken = "hostile-admin", "hostile-web-ci"
	files := map[string]string{
		"app.pem": fx.AppKeyPEM,
		"enc.key": strings.Repeat("k", 32),
		"tokens.yaml": fmt.Sprintf("tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n  - name: web-ci\n    sha256: %s\n    roles: [\"tenant-admin:web\"]\n",
			auth.TokenHash(adminToken), auth.TokenHash(webCIToken)),
		"policy.yaml": `bindings:
  - subject: system:serviceaccount:web-ns:ci
    roles: ["tenant-admin:web"]
  - subject: oidc:mallory@web.example
    roles: ["tenant-admin:web"]
  - subject: system:serviceaccount:platform:backend
    roles: [admin]
  - subject: group:platform
    roles: [admin]
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	grpcAddr, httpAddr := startBroker(t, credbroker, "--data-dir", filepath.Join(dir, "data"), "--kubeconfig", cp.Kubeconfig(t, "credbroker-hostile"),
		"--leader-elect=false", "--github-url", fx.APIURL, "--github-app-id", fmt.Sprint(fx.AppID),
		"--github-app-key-file", filepath.Join(dir, "app.pem"), "--encryption-key-file", filepath.Join(dir, "enc.key"),
		"--auth-token-file", filepath.Join(dir, "tokens.yaml"), "--auth-policy-file", filepath.Join(dir, "policy.yaml"),
		"--auth-token-review", "--oidc-issuer-url", issuer.URL, "--oidc-client-id", "credbroker",
		"--oidc-username-claim", "email", "--oidc-groups-claim", "groups")
	baseURL := "http://" + httpAddr
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	// Two tenants that do not trust each other: web (a PAT) and shop (the
	// App installation of another organization).
	for _, body := range []string{
		fmt.Sprintf(`{"id":"web","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"pat":{"token":%q},"namespaces":["web-ns"]}`,
			fx.PATOwner, fx.PATOwnerID, fx.PAT),
		fmt.Sprintf(`{"id":"shop","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},"namespaces":["shop-ns"]}`,
			fx.AppOwner, fx.AppOwnerID, fx.InstallationID),
	} {
		if code, resp := testenv.REST(t, http.MethodPost, baseURL+"/v1/tenants", adminToken, body); code != http.StatusOK {
			t.Fatalf("register: %d %s", code, resp)
		}
	}
	snapshot := func() string {
		var out []string
		for _, id := range []string{"web", "shop"} {
			code, body := testenv.REST(t, http.MethodGet, baseURL+"/v1/tenants/"+id, adminToken, "")
			var tn map[string]any
			if err := json.Unmarshal(body, &tn); code != http.StatusOK || err != nil {
				t.Fatalf("get %s: %d %s", id, code, body)
			}
			delete(tn, "probeImage") // the one field web's tenant-admin may set
			delete(tn, "updateTime")
			delete(tn, "etag")
			out = append(out, fmt.Sprint(tn))
		}
		return strings.Join(out, "\n")
	}
	before := snapshot()

	shopApp := fmt.Sprintf(`{"owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"}}`,
		fx.AppOwner, fx.AppOwnerID, fx.InstallationID)
	escalations := []attempt{
		updateWeb("take shop's owner and installation", shopApp, codes.PermissionDenied, "owner", "github_app"),
		updateWeb("ask for contents: write", fmt.Sprintf(`{"githubApp":{"installationId":"%d","permissions":{"contents":"write"}}}`, fx.InstallationID),
			codes.PermissionDenied, "github_app"),
		updateWeb("claim shop's namespace", `{"namespaces":["web-ns","shop-ns"]}`, codes.PermissionDenied, "namespaces"),
		updateWeb("select every namespace", `{"namespaceSelector":"x!=y"}`, codes.PermissionDenied, "namespace_selector"),
		updateWeb("run shop's images", fmt.Sprintf(`{"allowedOwners":[%q]}`, fx.AppOwner), codes.PermissionDenied, "allowed_owners"),
		updateWeb("send its credential to its own registry", `{"registries":["ghcr.io","attacker.example:5000"]}`, codes.PermissionDenied, "registries"),
		updateWeb("rename its Secret over another", `{"secretName":"credbroker-tenant-shop"}`, codes.PermissionDenied, "secret_name"),
		updateWeb("patch ServiceAccounts", `{"patchServiceAccounts":true}`, codes.PermissionDenied, "patch_service_accounts"),
		updateWeb("probe on a registry it controls", `{"probeImage":"attacker.example:5000/evil/app:v1"}`, codes.InvalidArgument, "probe_image"),
		updateWeb("probe another owner's image", fmt.Sprintf(`{"probeImage":"ghcr.io/%s/app:v1"}`, fx.AppOwner), codes.InvalidArgument, "probe_image"),
		{name: "read shop", method: "/credbroker.v1.TenantService/GetTenant", req: &credbrokerv1.GetTenantRequest{Id: "shop"},
			resp: &credbrokerv1.Tenant{}, verb: http.MethodGet, path: "/v1/tenants/shop", want: codes.PermissionDenied},
		{name: "read shop's credential status", method: "/credbroker.v1.CredentialService/GetCredentialStatus", req: &credbrokerv1.GetCredentialStatusRequest{TenantId: "shop"},
			resp: &credbrokerv1.CredentialStatus{}, verb: http.MethodGet, path: "/v1/tenants/shop/credential", want: codes.PermissionDenied},
		{name: "take shop's docker config", method: "/credbroker.v1.CredentialService/GetDockerConfig", req: &credbrokerv1.GetDockerConfigRequest{TenantId: "shop"},
			resp: &credbrokerv1.DockerConfig{}, verb: http.MethodGet, path: "/v1/tenants/shop/credential:dockerconfigjson", want: codes.PermissionDenied},
		{name: "refresh shop", method: "/credbroker.v1.CredentialService/RefreshCredential", req: &credbrokerv1.RefreshCredentialRequest{TenantId: "shop"},
			resp: &credbrokerv1.CredentialStatus{}, verb: http.MethodPost, path: "/v1/tenants/shop/credential:refresh", body: "{}", want: codes.PermissionDenied},
		{name: "delete shop", method: "/credbroker.v1.TenantService/DeleteTenant", req: &credbrokerv1.DeleteTenantRequest{Id: "shop"},
			resp: &emptypb.Empty{}, verb: http.MethodDelete, path: "/v1/tenants/shop", want: codes.PermissionDenied},
		{name: "list the platform's tenants", method: "/credbroker.v1.TenantService/ListTenants", req: &credbrokerv1.ListTenantsRequest{},
			resp: &credbrokerv1.ListTenantsResponse{}, verb: http.MethodGet, path: "/v1/tenants", want: codes.PermissionDenied},
		{name: "register a tenant on shop's installation", method: "/credbroker.v1.TenantService/CreateTenant",
			req:  &credbrokerv1.CreateTenantRequest{Tenant: &credbrokerv1.Tenant{Id: "web-two", Namespaces: []string{"shop-ns"}}},
			resp: &credbrokerv1.Tenant{}, verb: http.MethodPost, path: "/v1/tenants", body: `{"id":"web-two","namespaces":["shop-ns"]}`, want: codes.PermissionDenied},
		{name: "give itself a registry to run shop's images from", method: "/credbroker.v1.TenantService/AddRegistryCredential",
			req: &credbrokerv1.AddRegistryCredentialRequest{TenantId: "web", RegistryCredential: &credbrokerv1.RegistryCredential{
				Host: "attacker.example:5000", Username: "u", Password: "p", Owners: []string{strings.ToLower(fx.AppOwner)}}},
			resp: &credbrokerv1.Tenant{}, verb: http.MethodPost, path: "/v1/tenants/web/registryCredentials",
			body: fmt.Sprintf(`{"host":"attacker.example:5000","username":"u","password":"p","owners":[%q]}`, strings.ToLower(fx.AppOwner)), want: codes.PermissionDenied},
		{name: "rotate shop's registry credential", method: "/credbroker.v1.TenantService/RotateRegistryCredential",
			req:  &credbrokerv1.RotateRegistryCredentialRequest{TenantId: "shop", Host: "quay.io", Password: "mine"},
			resp: &credbrokerv1.Tenant{}, verb: http.MethodPost, path: "/v1/tenants/shop/registryCredentials:rotate", body: `{"host":"quay.io","password":"mine"}`, want: codes.PermissionDenied},
		updateWeb("set a probe image of its own (allowed)", fmt.Sprintf(`{"probeImage":"ghcr.io/%s/app:v1"}`, fx.PATOwner), codes.OK, "probe_image"),
	}
	callers := []struct{ name, token string }{
		{"token-file tenant-admin:web", webCIToken},
		{"OIDC user oidc:mallory@web.example", idToken("mallory@web.example", "team-web")},
		{"ServiceAccount web-ns/ci", saToken("credbroker")},
	}
	for _, caller := range callers {
		for _, a := range escalations {
			t.Run(caller.name+"/"+a.name, func(t *testing.T) {
				try(t, conn, baseURL, caller.token, a)
			})
		}
	}

	// Identities that pass for the admin by name or group get nothing; a
	// ServiceAccount token issued for another audience opens nothing.
	list := attempt{method: "/credbroker.v1.TenantService/ListTenants", req: &credbrokerv1.ListTenantsRequest{},
		resp: &credbrokerv1.ListTenantsResponse{}, verb: http.MethodGet, path: "/v1/tenants", want: codes.PermissionDenied}
	for _, tc := range []struct {
		name, token string
		want        codes.Code
	}{
		{"an OIDC user named like the admin's ServiceAccount", idToken("system:serviceaccount:platform:backend"), codes.PermissionDenied},
		{"an OIDC user in a group named platform", idToken("eve@web.example", "platform"), codes.PermissionDenied},
		{"an OIDC user named group:platform", idToken("group:platform"), codes.PermissionDenied},
		{"web's ServiceAccount with a token for another audience", saToken("some-other-service"), codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := list
			a.want = tc.want
			try(t, conn, baseURL, tc.token, a)
		})
	}
	if code, _ := testenv.REST(t, http.MethodGet, baseURL+"/metrics", webCIToken, ""); code != http.StatusForbidden {
		t.Errorf("/metrics as web's tenant-admin: %d, want 403 (tenant ids are its labels)", code)
	}

	if after := snapshot(); after != before {
		t.Errorf("the refused attempts changed the tenants:\nbefore %s\nafter  %s", before, after)
	}

	// What is refused to the tenant is the platform's to do.
	for _, a := range []attempt{
		updateWeb("widen web's namespaces", `{"namespaces":["web-ns","web-extra"]}`, codes.OK, "namespaces"),
		updateWeb("give web a selector", `{"namespaceSelector":"tenants.credbroker.io/team=web"}`, codes.OK, "namespace_selector"),
		updateWeb("grant web an owner", fmt.Sprintf(`{"allowedOwners":[%q]}`, fx.AppOwner), codes.OK, "allowed_owners"),
		updateWeb("add a registry", `{"registries":["ghcr.io","registry.platform.example"]}`, codes.OK, "registries"),
		updateWeb("patch ServiceAccounts", `{"patchServiceAccounts":true}`, codes.OK, "patch_service_accounts"),
		updateWeb("rename web's Secret", `{"secretName":"web-pull"}`, codes.OK, "secret_name"),
	} {
		t.Run("admin/"+a.name, func(t *testing.T) { try(t, conn, baseURL, adminToken, a) })
	}
}

// try makes a over gRPC and over REST as the bearer of token, and checks
// both answers.
func try(t *testing.T, conn *grpc.ClientConn, baseURL, token string, a attempt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), 10*time.Second)
	defer cancel()
	err := conn.Invoke(ctx, a.method, a.req, proto.Clone(a.resp))
	if st := status.Convert(err); st.Code() != a.want || !strings.Contains(st.Message(), a.field) {
		t.Errorf("gRPC: %v, want %v naming %q", err, a.want, a.field)
	}
	code, body := testenv.REST(t, a.verb, baseURL+a.path, token, a.body)
	if wantHTTP := httpStatus(a.want); code != wantHTTP || !strings.Contains(string(body), a.field) {
		t.Errorf("REST %s %s: %d %s, want %d naming %q", a.verb, a.path, code, body, wantHTTP, a.field)
	}
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}
