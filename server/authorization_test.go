package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/credbroker/credbroker/internal/testenv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// matrixTokens are the callers of the authorization matrix, one per column
// of docs/authorization.md.
var matrixTokens = map[string]auth.StaticToken{
	"admin":             {Name: "backend", Token: "t-admin", Roles: []string{auth.RoleAdmin}},
	"tenant-admin:web":  {Name: "web-ci", Token: "t-web-admin", Roles: []string{"tenant-admin:web"}},
	"tenant-reader:web": {Name: "web-dash", Token: "t-web-reader", Roles: []string{"tenant-reader:web"}},
	"tenant-admin:shop": {Name: "shop-ci", Token: "t-shop-admin", Roles: []string{"tenant-admin:shop"}},
	"metrics-reader":    {Name: "prometheus", Token: "t-metrics", Roles: []string{auth.RoleMetricsReader}},
}

// withGuard guards the server with the matrix tokens (after whatever else
// the authenticator chain holds first), policy (may be nil) and an audit
// trail in the store.
func withGuard(policy *auth.Policy, extra ...auth.Authenticator) option {
	return func(cfg *server.Config, store *boltstore.Store, log *slog.Logger) {
		var tokens []auth.StaticToken
		for _, tok := range matrixTokens {
			tokens = append(tokens, tok)
		}
		chain := append(auth.Chain(extra), auth.NewTokens(tokens...))
		cfg.Guard = server.NewGuard(server.GuardConfig{Authenticator: chain, Policy: policy, Audit: store}, log)
	}
}

// docTable reads the table of docs/authorization.md whose first header cell
// is header: its role columns, and for each row its key (first cell)
// mapped to role → allowed.
func docTable(t *testing.T, header string) (roles []string, rows map[string]map[string]bool) {
	t.Helper()
	doc, err := os.ReadFile("../docs/authorization.md")
	if err != nil {
		t.Fatal(err)
	}
	rows = map[string]map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break // the table ended
			}
			roles = nil
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		switch {
		case len(cells) > 1 && cells[0] == header:
			roles = cells[1:]
		case roles != nil && len(cells) == len(roles)+1 && !strings.HasPrefix(cells[0], "---"):
			row := map[string]bool{}
			for i, v := range cells[1:] {
				if v != "allow" && v != "deny" {
					t.Fatalf("docs/authorization.md: %s/%s is %q, want allow or deny", cells[0], roles[i], v)
				}
				row[roles[i]] = v == "allow"
			}
			rows[cells[0]] = row
		}
	}
	if len(rows) == 0 {
		t.Fatalf("docs/authorization.md has no %q table", header)
	}
	return roles, rows
}

// specTable reads the method × role table of docs/authorization.md.
func specTable(t *testing.T) (roles []string, spec map[string]map[string]bool) {
	t.Helper()
	roles, rows := docTable(t, "method")
	spec = map[string]map[string]bool{}
	for method, row := range rows {
		spec["/credbroker.v1."+strings.Replace(method, ".", "/", 1)] = row
	}
	return roles, spec
}

// apiMethods lists every method of every credbroker service.
func apiMethods() []string {
	var out []string
	for _, desc := range []grpc.ServiceDesc{credbrokerv1.TenantService_ServiceDesc, credbrokerv1.CredentialService_ServiceDesc,
		credbrokerv1.ImageService_ServiceDesc, credbrokerv1.EventService_ServiceDesc} {
		for _, m := range desc.Methods {
			out = append(out, "/"+desc.ServiceName+"/"+m.MethodName)
		}
		for _, s := range desc.Streams {
			out = append(out, "/"+desc.ServiceName+"/"+s.StreamName)
		}
	}
	slices.Sort(out)
	return out
}

// matrixCall is one method, over gRPC and over REST, concerning tenant web.
type matrixCall struct {
	grpc             func(ctx context.Context, conn *grpc.ClientConn) error
	verb, path, body string
}

const newTenantJSON = `{"id":"web-two","owner":{"login":"acme","id":"1001","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"42"}}`

func matrixCalls() map[string]matrixCall {
	const replayAll = "0000000000000000"
	return map[string]matrixCall{
		"/credbroker.v1.TenantService/CreateTenant": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: &credbrokerv1.Tenant{Id: "web-two"}})
			return err
		}, http.MethodPost, "/v1/tenants", newTenantJSON},
		"/credbroker.v1.TenantService/GetTenant": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "web"})
			return err
		}, http.MethodGet, "/v1/tenants/web", ""},
		"/credbroker.v1.TenantService/ListTenants": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).ListTenants(ctx, &credbrokerv1.ListTenantsRequest{})
			return err
		}, http.MethodGet, "/v1/tenants", ""},
		"/credbroker.v1.TenantService/UpdateTenant": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{Tenant: &credbrokerv1.Tenant{Id: "web"}})
			return err
		}, http.MethodPatch, "/v1/tenants/web", `{"probeImage":"ghcr.io/acme/app:v1"}`},
		"/credbroker.v1.TenantService/DeleteTenant": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).DeleteTenant(ctx, &credbrokerv1.DeleteTenantRequest{Id: "web", Etag: "stale"})
			return err
		}, http.MethodDelete, "/v1/tenants/web?etag=stale", ""},
		"/credbroker.v1.TenantService/AddRegistryCredential": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).AddRegistryCredential(ctx, &credbrokerv1.AddRegistryCredentialRequest{TenantId: "web",
				RegistryCredential: &credbrokerv1.RegistryCredential{Host: "quay.io", Username: "robot", Password: "secret", Owners: []string{"acme"}}})
			return err
		}, http.MethodPost, "/v1/tenants/web/registryCredentials", `{"host":"quay.io","username":"robot","password":"secret","owners":["acme"]}`},
		"/credbroker.v1.TenantService/RotateRegistryCredential": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).RotateRegistryCredential(ctx, &credbrokerv1.RotateRegistryCredentialRequest{TenantId: "web", Host: "quay.io", Password: "new"})
			return err
		}, http.MethodPost, "/v1/tenants/web/registryCredentials:rotate", `{"host":"quay.io","password":"new"}`},
		"/credbroker.v1.TenantService/RemoveRegistryCredential": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewTenantServiceClient(c).RemoveRegistryCredential(ctx, &credbrokerv1.RemoveRegistryCredentialRequest{TenantId: "web", Host: "quay.io", Etag: "stale"})
			return err
		}, http.MethodDelete, "/v1/tenants/web/registryCredentials?host=quay.io&etag=stale", ""},
		"/credbroker.v1.CredentialService/GetCredentialStatus": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewCredentialServiceClient(c).GetCredentialStatus(ctx, &credbrokerv1.GetCredentialStatusRequest{TenantId: "web"})
			return err
		}, http.MethodGet, "/v1/tenants/web/credential", ""},
		"/credbroker.v1.CredentialService/RefreshCredential": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewCredentialServiceClient(c).RefreshCredential(ctx, &credbrokerv1.RefreshCredentialRequest{TenantId: "web"})
			return err
		}, http.MethodPost, "/v1/tenants/web/credential:refresh", "{}"},
		"/credbroker.v1.CredentialService/GetDockerConfig": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewCredentialServiceClient(c).GetDockerConfig(ctx, &credbrokerv1.GetDockerConfigRequest{TenantId: "web"})
			return err
		}, http.MethodGet, "/v1/tenants/web/credential:dockerconfigjson", ""},
		"/credbroker.v1.ImageService/ValidateImage": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewImageServiceClient(c).ValidateImage(ctx, &credbrokerv1.ValidateImageRequest{TenantId: "web", Image: "ghcr.io/acme/api:1"})
			return err
		}, http.MethodPost, "/v1/tenants/web/images:validate", `{"image":"ghcr.io/acme/api:1"}`},
		"/credbroker.v1.ImageService/ValidatePod": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewImageServiceClient(c).ValidatePod(ctx, &credbrokerv1.ValidatePodRequest{TenantId: "web",
				PodSpec: &credbrokerv1.PodSpec{Containers: []*credbrokerv1.Container{{Name: "a", Image: "ghcr.io/acme/api:1"}}}})
			return err
		}, http.MethodPost, "/v1/tenants/web/pods:validate", `{"podSpec":{"containers":[{"name":"a","image":"ghcr.io/acme/api:1"}]}}`},
		"/credbroker.v1.EventService/ListEvents": {func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credbrokerv1.NewEventServiceClient(c).ListEvents(ctx, &credbrokerv1.ListEventsRequest{TenantId: "web"})
			return err
		}, http.MethodGet, "/v1/events?tenantId=web", ""},
		"/credbroker.v1.EventService/WatchEvents": {func(ctx context.Context, c *grpc.ClientConn) error {
			stream, err := credbrokerv1.NewEventServiceClient(c).WatchEvents(ctx, &credbrokerv1.WatchEventsRequest{TenantId: "web", AfterId: replayAll})
			if err == nil {
				_, err = stream.Recv()
			}
			return err
		}, http.MethodGet, "/v1/events:watch?tenantId=web&afterId=" + replayAll, ""},
	}
}

// TestAuthorizationMatrix calls every method as every role of the table in
// docs/authorization.md, over gRPC and REST, and checks the table's verdict.
func TestAuthorizationMatrix(t *testing.T) {
	roles, spec := specTable(t)
	methods := apiMethods()
	if got := slices.Sorted(maps.Keys(spec)); !slices.Equal(got, methods) {
		t.Fatalf("docs/authorization.md lists %v;\nthe API has %v", got, methods)
	}
	var guarded, self []string
	for method, rule := range api.Methods() {
		if rule.Access == auth.SelfAuthenticated {
			self = append(self, method)
		} else {
			guarded = append(guarded, method)
		}
	}
	if slices.Sort(guarded); !slices.Equal(guarded, methods) {
		t.Fatalf("api.Methods has %v;\nthe API has %v", guarded, methods)
	}
	// The exchange carries the Pod's token and checks it itself: the one
	// method the Guard lets through without an identity.
	if want := []string{"/credbroker.v1.PullCredentialService/ExchangeServiceAccountToken"}; !slices.Equal(self, want) {
		t.Fatalf("self-authenticated methods %v, want %v", self, want)
	}
	for _, role := range roles {
		if _, ok := matrixTokens[role]; !ok {
			t.Fatalf("the table has a column %q the test has no caller for", role)
		}
	}

	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	ctx := context.Background()
	if _, _, err := in.registry.Create(ctx, broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: acmeOrgID, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: acmeInstall}}); err != nil {
		t.Fatal(err)
	}
	raise(t, in, broker.EventProbeFailed, "web") // something for the watch to replay
	calls := matrixCalls()
	for _, method := range methods {
		call := calls[method]
		for _, role := range roles {
			want, token := spec[method][role], matrixTokens[role].Token
			t.Run(method[len("/credbroker.v1."):]+"/"+role, func(t *testing.T) {
				cctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 10*time.Second)
				defer cancel()
				code := status.Code(call.grpc(cctx, in.conn))
				if denied := code == codes.PermissionDenied; denied == want || code == codes.Unauthenticated {
					t.Errorf("gRPC: %v, want allowed=%v", code, want)
				}
				httpCode := restCall(t, in.baseURL, call.verb, call.path, call.body, token)
				if denied := httpCode == http.StatusForbidden; denied == want || httpCode == http.StatusUnauthorized {
					t.Errorf("REST: %d, want allowed=%v", httpCode, want)
				}
			})
		}
	}

	t.Run("no identity is a 401 everywhere", func(t *testing.T) {
		for _, method := range methods {
			call := calls[method]
			if code := status.Code(call.grpc(ctx, in.conn)); code != codes.Unauthenticated {
				t.Errorf("%s over gRPC without a token: %v", method, code)
			}
			if code := restCall(t, in.baseURL, call.verb, call.path, call.body, "not-a-token"); code != http.StatusUnauthorized {
				t.Errorf("%s over REST with an unknown token: %d", method, code)
			}
		}
	})
	t.Run("health and reflection need no identity", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz", "/openapi.json"} {
			if code := restCall(t, in.baseURL, http.MethodGet, path, "", ""); code != http.StatusOK {
				t.Errorf("%s: %d", path, code)
			}
		}
	})
	// Tenant ids are labels of /metrics: a metrics-reader or an admin reads
	// it, nobody else, and a metrics-reader reads nothing of the API.
	t.Run("metrics need a metrics-reader", func(t *testing.T) {
		for _, tc := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {"not-a-token", http.StatusUnauthorized},
			{matrixTokens["tenant-admin:web"].Token, http.StatusForbidden},
			{matrixTokens["metrics-reader"].Token, http.StatusOK}, {matrixTokens["admin"].Token, http.StatusOK}} {
			if code := restCall(t, in.baseURL, http.MethodGet, "/metrics", "", tc.token); code != tc.want {
				t.Errorf("/metrics with token %q: %d, want %d", tc.token, code, tc.want)
			}
		}
		if code := restCall(t, in.baseURL, http.MethodGet, "/v1/tenants/web", "", matrixTokens["metrics-reader"].Token); code != http.StatusForbidden {
			t.Errorf("a metrics-reader reading a tenant: %d, want 403", code)
		}
	})
}

// restCall makes one REST call with a bearer token and returns the status;
// for a stream, the status of its first line.
func restCall(t *testing.T, baseURL, verb, path, body, token string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, verb, baseURL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if strings.Contains(path, ":watch") && resp.StatusCode == http.StatusOK {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		switch {
		case strings.Contains(line, `"code":7`):
			return http.StatusForbidden
		case strings.Contains(line, `"code":16`):
			return http.StatusUnauthorized
		}
	}
	return resp.StatusCode
}

// fieldChanges are legitimate changes of each mutable Tenant field of the
// PAT tenant web: as a gRPC request and as the REST body.
func fieldChanges() map[string]struct {
	tenant *credbrokerv1.Tenant
	json   string
} {
	type change = struct {
		tenant *credbrokerv1.Tenant
		json   string
	}
	return map[string]change{
		"owner": {&credbrokerv1.Tenant{Owner: &credbrokerv1.Owner{Login: "acme", Id: acmeOrgID, Type: credbrokerv1.OwnerType_OWNER_TYPE_ORGANIZATION}},
			fmt.Sprintf(`{"owner":{"login":"acme","id":"%d","type":"OWNER_TYPE_ORGANIZATION"}}`, acmeOrgID)},
		"github_app": {&credbrokerv1.Tenant{Credential: &credbrokerv1.Tenant_GithubApp{GithubApp: &credbrokerv1.GitHubAppSource{InstallationId: acmeInstall}}},
			fmt.Sprintf(`{"githubApp":{"installationId":"%d"}}`, acmeInstall)},
		"pat": {&credbrokerv1.Tenant{Credential: &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{Token: acmeBotPAT}}},
			`{"pat":{"token":"` + acmeBotPAT + `"}}`},
		"namespaces":             {&credbrokerv1.Tenant{Namespaces: []string{"web-prod", "web-dev"}}, `{"namespaces":["web-prod","web-dev"]}`},
		"namespace_selector":     {&credbrokerv1.Tenant{NamespaceSelector: "team=web"}, `{"namespaceSelector":"team=web"}`},
		"registries":             {&credbrokerv1.Tenant{Registries: []string{"ghcr.io"}}, `{"registries":["ghcr.io"]}`},
		"secret_name":            {&credbrokerv1.Tenant{SecretName: "web-pull"}, `{"secretName":"web-pull"}`},
		"probe_image":            {&credbrokerv1.Tenant{ProbeImage: "ghcr.io/acme/app:v1"}, `{"probeImage":"ghcr.io/acme/app:v1"}`},
		"allowed_owners":         {&credbrokerv1.Tenant{AllowedOwners: []string{"acme-shared"}}, `{"allowedOwners":["acme-shared"]}`},
		"patch_service_accounts": {&credbrokerv1.Tenant{PatchServiceAccounts: true}, `{"patchServiceAccounts":true}`},
		"pull_mode":              {&credbrokerv1.Tenant{PullMode: credbrokerv1.PullMode_PULL_MODE_BOTH}, `{"pullMode":"PULL_MODE_BOTH"}`},
		"registry_push":          {&credbrokerv1.Tenant{RegistryPush: true}, `{"registryPush":true}`},
	}
}

// TestUpdatableFields makes each change of the field table in
// docs/authorization.md as each role, over gRPC and REST: a tenant-admin is
// refused every field that would widen its tenant's reach, naming it, and
// an admin makes each change.
func TestUpdatableFields(t *testing.T) {
	roles, spec := docTable(t, "field")
	var mutable []string
	fields := (&credbrokerv1.Tenant{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		// registry_credentials have methods of their own, in the method table.
		if name := string(fields.Get(i).Name()); !slices.Contains([]string{"id", "name", "create_time", "update_time", "etag", "registry_credentials"}, name) {
			mutable = append(mutable, name)
		}
	}
	if got := slices.Sorted(maps.Keys(spec)); !slices.Equal(got, slices.Sorted(slices.Values(mutable))) {
		t.Fatalf("docs/authorization.md lists the fields %v;\nTenant's mutable fields are %v", got, mutable)
	}
	changes := fieldChanges()
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	ctx := context.Background()
	reset := func(t *testing.T) {
		t.Helper()
		_ = in.registry.Delete(ctx, "web", "")
		if _, _, err := in.registry.Create(ctx, broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: acmeOrgID, Type: broker.OwnerOrganization},
			PAT: &broker.PAT{Token: acmeBotPAT}, Namespaces: []string{"web-prod"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, field := range mutable {
		change := changes[field]
		for _, role := range roles {
			want, token := spec[field][role], matrixTokens[role].Token
			t.Run(field+"/"+role, func(t *testing.T) {
				reset(t)
				tn := proto.Clone(change.tenant).(*credbrokerv1.Tenant)
				tn.Id = "web"
				cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
				_, err := in.tenants.UpdateTenant(cctx, &credbrokerv1.UpdateTenantRequest{Tenant: tn, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{field}}})
				switch code := status.Code(err); {
				case want && code != codes.OK:
					t.Errorf("gRPC: %v, want the change made", err)
				case !want && (code != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), field)):
					t.Errorf("gRPC: %v, want PERMISSION_DENIED naming %s", err, field)
				}
				reset(t)
				code, body := testenv.REST(t, http.MethodPatch, in.baseURL+"/v1/tenants/web", token, change.json)
				switch {
				case want && code != http.StatusOK:
					t.Errorf("REST: %d %s, want the change made", code, body)
				case !want && (code != http.StatusForbidden || !strings.Contains(string(body), field)):
					t.Errorf("REST: %d %s, want 403 naming %s", code, body, field)
				}
			})
		}
	}
}

// A tenant-admin may rotate a PAT, but not turn its App tenant into a PAT
// tenant: that changes the credential source. An admin may.
func TestATenantAdminCannotChangeTheCredentialSource(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	createWeb(t, in)
	change := fieldChanges()["pat"]
	tn := proto.Clone(change.tenant).(*credbrokerv1.Tenant)
	tn.Id = "web"
	for _, tc := range []struct {
		role string
		want codes.Code
	}{{"tenant-admin:web", codes.PermissionDenied}, {"admin", codes.OK}} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+matrixTokens[tc.role].Token)
		_, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{Tenant: tn, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"pat"}}})
		if status.Code(err) != tc.want {
			t.Errorf("%s turning the App tenant into a PAT tenant: %v, want %v", tc.role, err, tc.want)
		}
	}
	if got, err := in.registry.Get(context.Background(), "web"); err != nil || got.PAT == nil {
		t.Errorf("after the admin's change: %+v, %v, want a PAT tenant", got, err)
	}
}
