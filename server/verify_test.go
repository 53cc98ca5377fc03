package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/credbroker/credbroker/github/emulator"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// errorInfo returns the code and the ErrorInfo reason of a gRPC error.
func errorInfo(err error) (codes.Code, string, time.Duration) {
	st := status.Convert(err)
	reason, retry := "", time.Duration(0)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
		}
	}
	return st.Code(), reason, retry
}

func patTenant(id string, owner *credbrokerv1.Owner, token string) *credbrokerv1.Tenant {
	return &credbrokerv1.Tenant{Id: id, Owner: owner, Credential: &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{Token: token}}}
}

var octoOwner = &credbrokerv1.Owner{Login: "octo", Id: octoUserID, Type: credbrokerv1.OwnerType_OWNER_TYPE_USER}

func TestRegistrationIsCheckedWithGitHub(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		setup  func(gh *emulator.Server)
		tenant *credbrokerv1.Tenant
		code   codes.Code
		reason string
	}{
		{"App installation of the owner", nil, appTenant("ok"), codes.OK, ""},
		{"PAT of an org's machine user", nil, patTenant("ok", appTenant("").Owner, acmeBotPAT), codes.OK, ""},
		{"PAT of the user owner", nil, patTenant("ok", octoOwner, octoPAT), codes.OK, ""},
		{"someone else's installation", func(gh *emulator.Server) {
			gh.AddInstallation(emulator.AppInstallation{ID: 77, AppID: testAppID, Permissions: map[string]string{"packages": "read"},
				Account: emulator.Account{Login: "evil", ID: 666, Type: "Organization"}})
		}, func() *credbrokerv1.Tenant {
			tn := appTenant("x")
			tn.GetGithubApp().InstallationId = 77
			return tn
		}(), codes.FailedPrecondition, "OWNER_MISMATCH"},
		{"the owner's id under an older login: matched by id", nil, func() *credbrokerv1.Tenant {
			tn := appTenant("renamed")
			tn.Owner.Login = "acme-old-name"
			return tn
		}(), codes.OK, ""},
		{"the owner's login with another id", nil, func() *credbrokerv1.Tenant {
			tn := appTenant("x")
			tn.Owner.Id++
			return tn
		}(), codes.FailedPrecondition, "OWNER_MISMATCH"},
		{"installation that does not exist", nil, func() *credbrokerv1.Tenant {
			tn := appTenant("x")
			tn.GetGithubApp().InstallationId = 999
			return tn
		}(), codes.FailedPrecondition, "INSTALLATION_NOT_FOUND"},
		{"suspended installation", func(gh *emulator.Server) { gh.SuspendInstallation(acmeInstall) }, appTenant("x"),
			codes.FailedPrecondition, "INSTALLATION_SUSPENDED"},
		{"permission beyond the installation's", nil, func() *credbrokerv1.Tenant {
			tn := appTenant("x")
			tn.GetGithubApp().Permissions = map[string]string{"packages": "write"}
			return tn
		}(), codes.FailedPrecondition, "MISSING_SCOPE"},
		{"permission beyond the platform's grant", nil, func() *credbrokerv1.Tenant {
			tn := appTenant("x")
			tn.GetGithubApp().Permissions = map[string]string{"packages": "read", "contents": "write"}
			return tn
		}(), codes.InvalidArgument, ""},
		{"another user's PAT for a user owner", nil, patTenant("x", octoOwner, acmeBotPAT), codes.FailedPrecondition, "OWNER_MISMATCH"},
		{"revoked PAT", func(gh *emulator.Server) { gh.Revoke(octoPAT) }, patTenant("x", octoOwner, octoPAT),
			codes.FailedPrecondition, "TOKEN_REVOKED"},
		{"PAT without read:packages", func(gh *emulator.Server) {
			gh.AddPAT(octoPAT, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: octoUserID, Type: "User"}, Scopes: []string{"repo"}})
		}, patTenant("x", octoOwner, octoPAT), codes.FailedPrecondition, "MISSING_SCOPE"},
		{"GitHub failing", func(gh *emulator.Server) { gh.FailNext(http.StatusBadGateway) }, appTenant("x"),
			codes.Unavailable, "GITHUB_UNAVAILABLE"},
		{"GitHub rate limit", func(gh *emulator.Server) { gh.SecondaryLimitNext(1, 30*time.Second) }, appTenant("x"),
			codes.Unavailable, "RATE_LIMITED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := start(t, t.TempDir(), server.Services{})
			if tc.setup != nil {
				tc.setup(in.gh)
			}
			_, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: tc.tenant})
			code, reason, retry := errorInfo(err)
			if code != tc.code || reason != tc.reason {
				t.Fatalf("got %v %q (%v), want %v %q", code, reason, err, tc.code, tc.reason)
			}
			if reason == "RATE_LIMITED" && retry != 30*time.Second {
				t.Errorf("RetryInfo delay %v, want GitHub's 30s", retry)
			}
			if code == codes.OK {
				// The owner's login is GitHub's, whatever the request said.
				got, err := in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: tc.tenant.GetId()})
				if err != nil || (tc.tenant.GetGithubApp() != nil && got.GetOwner().GetLogin() != appTenant("").GetOwner().GetLogin()) {
					t.Errorf("stored owner %v (%v), want GitHub's login", got.GetOwner(), err)
				}
				return
			}
			if _, err := in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: tc.tenant.GetId()}); status.Code(err) != codes.NotFound {
				t.Errorf("a refused tenant was stored (get: %v)", err)
			}
		})
	}
}

func TestRefusalsOverRESTAndOnUpdate(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	in.gh.AddInstallation(emulator.AppInstallation{ID: 77, AppID: testAppID, Permissions: map[string]string{"packages": "read"},
		Account: emulator.Account{Login: "evil", ID: 666, Type: "Organization"}})

	code, body := in.do(t, http.MethodPost, "/v1/tenants",
		`{"id":"web","owner":{"login":"acme","id":1001,"type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":77}}`)
	if code != http.StatusBadRequest || !hasReason(body, "OWNER_MISMATCH") {
		t.Errorf("REST create with a foreign installation: %d %v, want 400 with reason OWNER_MISMATCH", code, body)
	}

	created, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("web")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "web", Credential: &credbrokerv1.Tenant_GithubApp{
			GithubApp: &credbrokerv1.GitHubAppSource{InstallationId: 77}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"github_app.installation_id"}}})
	if code, reason, _ := errorInfo(err); code != codes.FailedPrecondition || reason != "OWNER_MISMATCH" {
		t.Errorf("moving a tenant onto a foreign installation: %v %q", code, reason)
	}
	got, err := in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "web"})
	if err != nil || got.GetEtag() != created.GetEtag() {
		t.Errorf("a refused update changed the tenant: %v, %v", got, err)
	}

	// Updates that leave the credential alone do not ask GitHub again.
	calls := in.gh.Calls(emulator.RouteGetInstallation)
	if _, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "web", Namespaces: []string{"web-a"}}}); err != nil {
		t.Fatal(err)
	}
	if n := in.gh.Calls(emulator.RouteGetInstallation); n != calls {
		t.Errorf("a namespaces update called GitHub %d times", n-calls)
	}
}

func hasReason(body map[string]any, reason string) bool {
	details, _ := body["details"].([]any)
	for _, d := range details {
		if detail, _ := d.(map[string]any); detail["reason"] == reason {
			return true
		}
	}
	return false
}

func TestANamespaceBelongsToOneTenant(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	first := appTenant("first")
	first.Namespaces = []string{"shared", "first-only"}
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: first}); err != nil {
		t.Fatal(err)
	}
	second := appTenant("second")
	second.Namespaces = []string{"second-only", "shared"}
	_, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: second})
	if code, reason, _ := errorInfo(err); code != codes.FailedPrecondition || reason != "NAMESPACE_CLAIMED" {
		t.Fatalf("second claim: %v %q (%v)", code, reason, err)
	}
	if strings.Contains(status.Convert(err).Message(), "first") {
		t.Errorf("the refusal names the other tenant: %v", err)
	}
	second.Namespaces = []string{"second-only"}
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: second}); err != nil {
		t.Fatal(err)
	}
	_, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "second", Namespaces: []string{"second-only", "first-only"}}})
	if code, reason, _ := errorInfo(err); code != codes.FailedPrecondition || reason != "NAMESPACE_CLAIMED" {
		t.Errorf("claim by update: %v %q", code, reason)
	}
	// A tenant may keep its own namespaces on update.
	if _, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "first", Namespaces: []string{"shared", "first-only", "first-2"}}}); err != nil {
		t.Errorf("update keeping its own namespaces: %v", err)
	}
}
