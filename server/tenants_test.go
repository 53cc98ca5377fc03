package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/credbroker/credbroker/boltstore"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

func appTenant(id string) *credbrokerv1.Tenant {
	return &credbrokerv1.Tenant{
		Id:         id,
		Owner:      &credbrokerv1.Owner{Login: "acme", Id: 1001, Type: credbrokerv1.OwnerType_OWNER_TYPE_ORGANIZATION},
		Credential: &credbrokerv1.Tenant_GithubApp{GithubApp: &credbrokerv1.GitHubAppSource{InstallationId: 42}},
		Namespaces: []string{id + "-prod", id + "-stage"},
	}
}

func TestTenantLifecycleOverGRPC(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})

	created, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("payments")})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.GetName() != "tenants/payments" || created.GetEtag() == "" || created.GetCreateTime() == nil {
		t.Errorf("create did not fill name/etag/create_time: %v", created)
	}
	if got := created.GetRegistries(); len(got) != 1 || got[0] != "ghcr.io" {
		t.Errorf("registries default = %v, want [ghcr.io]", got)
	}
	if got := created.GetSecretName(); got != "ghcr-secret" {
		t.Errorf("secret_name default = %q, want ghcr-secret", got)
	}
	if got := created.GetGithubApp().GetPermissions(); len(got) != 1 || got["packages"] != "read" {
		t.Errorf("permissions default = %v, want packages: read", got)
	}

	again, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("payments")})
	if err != nil {
		t.Fatalf("repeating an identical create must succeed: %v", err)
	}
	if again.GetEtag() != created.GetEtag() {
		t.Errorf("identical create wrote again: etag %s -> %s", created.GetEtag(), again.GetEtag())
	}
	different := appTenant("payments")
	different.Namespaces = []string{"elsewhere"}
	_, err = in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: different})
	if code := status.Code(err); code != codes.AlreadyExists {
		t.Errorf("create with different content: code %v, want AlreadyExists", code)
	}

	got, err := in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "payments"})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !proto.Equal(got, created) {
		t.Errorf("get = %v, want %v", got, created)
	}

	updated, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant:     &credbrokerv1.Tenant{Id: "payments", Namespaces: []string{"payments-prod"}, Etag: got.GetEtag()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"namespaces"}},
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if ns := updated.GetNamespaces(); len(ns) != 1 || ns[0] != "payments-prod" {
		t.Errorf("namespaces after update = %v", ns)
	}
	if updated.GetOwner().GetLogin() != "acme" || updated.GetGithubApp().GetInstallationId() != 42 {
		t.Errorf("update touched fields outside the mask: %v", updated)
	}
	if updated.GetEtag() == got.GetEtag() {
		t.Error("etag did not change on update")
	}

	_, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant:     &credbrokerv1.Tenant{Id: "payments", SecretName: "stale", Etag: got.GetEtag()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secret_name"}},
	})
	if code := status.Code(err); code != codes.Aborted {
		t.Errorf("update with a stale etag: code %v, want Aborted", code)
	}

	if _, err := in.tenants.DeleteTenant(ctx, &credbrokerv1.DeleteTenantRequest{Id: "payments"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "payments"})
	if code := status.Code(err); code != codes.NotFound {
		t.Errorf("get after delete: code %v, want NotFound", code)
	}
	_, err = in.tenants.DeleteTenant(ctx, &credbrokerv1.DeleteTenantRequest{Id: "payments"})
	if code := status.Code(err); code != codes.NotFound {
		t.Errorf("second delete: code %v, want NotFound", code)
	}
}

func TestListTenantsPagesThroughAllInIDOrder(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	const n = 7
	for i := n - 1; i >= 0; i-- { // created out of order on purpose
		if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant(fmt.Sprintf("t%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("pagination does not terminate")
		}
		resp, err := in.tenants.ListTenants(ctx, &credbrokerv1.ListTenantsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetTenants()) > 3 {
			t.Fatalf("page of %d tenants, asked for 3", len(resp.GetTenants()))
		}
		for _, tn := range resp.GetTenants() {
			ids = append(ids, tn.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if want := "t0 t1 t2 t3 t4 t5 t6"; strings.Join(ids, " ") != want {
		t.Errorf("listed %v, want %s", ids, want)
	}

	_, err := in.tenants.ListTenants(ctx, &credbrokerv1.ListTenantsRequest{PageToken: "%%%"})
	assertViolation(t, err, "page_token")
	_, err = in.tenants.ListTenants(ctx, &credbrokerv1.ListTenantsRequest{PageSize: -1})
	assertViolation(t, err, "page_size")
}

// assertViolation checks that err is InvalidArgument with a BadRequest field
// violation naming field.
func assertViolation(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %v (%v), want InvalidArgument naming %s", st.Code(), err, field)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Errorf("violations name %v, want %s", fields, field)
}

func TestInvalidTenantsNameTheField(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	tests := []struct {
		name  string
		edit  func(*credbrokerv1.Tenant)
		field string
	}{
		{"id not a DNS label", func(tn *credbrokerv1.Tenant) { tn.Id = "Payments_Team" }, "tenant.id"},
		{"owner login with double hyphen", func(tn *credbrokerv1.Tenant) { tn.Owner.Login = "a--b" }, "tenant.owner.login"},
		{"owner without numeric id", func(tn *credbrokerv1.Tenant) { tn.Owner.Id = 0 }, "tenant.owner.id"},
		{"owner without type", func(tn *credbrokerv1.Tenant) { tn.Owner.Type = 0 }, "tenant.owner.type"},
		{"no credential", func(tn *credbrokerv1.Tenant) { tn.Credential = nil }, "tenant.credential"},
		{"no installation id", func(tn *credbrokerv1.Tenant) { tn.GetGithubApp().InstallationId = 0 }, "tenant.github_app.installation_id"},
		{"bad permission level", func(tn *credbrokerv1.Tenant) { tn.GetGithubApp().Permissions = map[string]string{"packages": "all"} }, "tenant.github_app.permissions"},
		{"bad namespace", func(tn *credbrokerv1.Tenant) { tn.Namespaces = []string{"ok", "Not OK"} }, "tenant.namespaces[1]"},
		{"duplicate namespace", func(tn *credbrokerv1.Tenant) { tn.Namespaces = []string{"a", "a"} }, "tenant.namespaces[1]"},
		{"bad selector", func(tn *credbrokerv1.Tenant) { tn.NamespaceSelector = "team in (a" }, "tenant.namespace_selector"},
		{"bad registry", func(tn *credbrokerv1.Tenant) { tn.Registries = []string{"GHCR.io"} }, "tenant.registries[0]"},
		{"bad secret name", func(tn *credbrokerv1.Tenant) { tn.SecretName = "-x" }, "tenant.secret_name"},
		{"probe image of another owner", func(tn *credbrokerv1.Tenant) { tn.ProbeImage = "ghcr.io/evil/app:1" }, "tenant.probe_image"},
		{"probe image on Docker Hub", func(tn *credbrokerv1.Tenant) { tn.ProbeImage = "ubuntu:24.04" }, "tenant.probe_image"},
		{"allowed owner not a login", func(tn *credbrokerv1.Tenant) { tn.AllowedOwners = []string{"-bad"} }, "tenant.allowed_owners[0]"},
		{"PAT without token", func(tn *credbrokerv1.Tenant) {
			tn.Credential = &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{}}
		}, "tenant.pat.token"},
		{"fine-grained PAT", func(tn *credbrokerv1.Tenant) {
			tn.Credential = &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{Token: "github_pat_11ABCDEF"}}
		}, "tenant.pat.token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := appTenant("v")
			tc.edit(tn)
			_, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: tn})
			assertViolation(t, err, tc.field)
		})
	}
	// Bad input loses nothing: nothing was stored by any of the calls.
	resp, err := in.tenants.ListTenants(ctx, &credbrokerv1.ListTenantsRequest{})
	if err != nil || len(resp.GetTenants()) != 0 {
		t.Errorf("invalid creates stored %v (err %v)", resp.GetTenants(), err)
	}
}

func TestUpdateMaskRules(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("m")}); err != nil {
		t.Fatal(err)
	}
	_, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "m"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"create_time"}}})
	assertViolation(t, err, "update_mask")
	_, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "m"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"owner.nickname"}}})
	assertViolation(t, err, "update_mask")

	// A nested path changes just that field.
	got, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "m", Credential: &credbrokerv1.Tenant_GithubApp{
			GithubApp: &credbrokerv1.GitHubAppSource{Repositories: []string{"api"}}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"github_app.repositories"}}})
	if err != nil {
		t.Fatal(err)
	}
	if app := got.GetGithubApp(); app.GetInstallationId() != acmeInstall || len(app.GetRepositories()) != 1 {
		t.Errorf("github_app after a github_app.repositories update = %v", app)
	}

	// Switching the credential to a PAT replaces the App (oneof).
	got, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "m", Credential: &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{Token: acmeBotPAT}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetGithubApp() != nil || got.GetPat().GetFingerprint() == "" || got.GetPat().GetToken() != "" {
		t.Errorf("after switching to a PAT: %v", got)
	}
	// An update that does not touch the PAT keeps it.
	got, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: &credbrokerv1.Tenant{Id: "m", ProbeImage: "ghcr.io/acme/base:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetPat().GetFingerprint() == "" {
		t.Errorf("PAT lost by an unrelated update: %v", got)
	}
	// Switching back to "pat" without a token, from an App, is refused.
	if _, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant: appTenant("m"), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"github_app"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{
		Tenant:     &credbrokerv1.Tenant{Id: "m", Credential: &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"pat"}}})
	assertViolation(t, err, "tenant.pat.token")
}

func TestTenantsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := start(t, dir, server.Services{})
	pat := &credbrokerv1.Tenant{
		Id:         "builds",
		Owner:      &credbrokerv1.Owner{Login: "octo", Id: octoUserID, Type: credbrokerv1.OwnerType_OWNER_TYPE_USER},
		Credential: &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{Token: octoPAT}},
	}
	before, err := first.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: pat})
	if err != nil {
		t.Fatal(err)
	}
	first.stop(t)

	second := start(t, dir, server.Services{})
	after, err := second.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "builds"})
	if err != nil {
		t.Fatalf("tenant gone after restart: %v", err)
	}
	if !proto.Equal(before, after) {
		t.Errorf("after restart = %v, want %v", after, before)
	}
	// The same create after the restart is still recognised as identical,
	// which needs the sealed PAT to open with the key.
	if _, err := second.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: pat}); err != nil {
		t.Errorf("identical create after restart: %v", err)
	}
}

func TestPATNeverLeaves(t *testing.T) {
	const token = octoPAT
	dir := t.TempDir()
	in := start(t, dir, server.Services{})
	body := `{"id":"secretive","owner":{"login":"octo","id":"7","type":"OWNER_TYPE_USER"},"pat":{"token":"` + token + `"}}`

	var seen []string
	record := func(code int, resp map[string]any) {
		seen = append(seen, fmt.Sprint(code, resp))
	}
	record(in.do(t, http.MethodPost, "/v1/tenants", body))
	record(in.do(t, http.MethodPost, "/v1/tenants", body)) // idempotent repeat
	record(in.do(t, http.MethodPost, "/v1/tenants",
		`{"id":"secretive","owner":{"login":"octo","id":"7","type":"OWNER_TYPE_USER"},"pat":{"token":"`+token+`x"}}`)) // conflict
	record(in.do(t, http.MethodPost, "/v1/tenants",
		`{"id":"other","owner":{"login":"octo","id":"7","type":"OWNER_TYPE_USER"},"pat":{"token":"`+token+`x"}}`)) // unknown to GitHub
	record(in.do(t, http.MethodGet, "/v1/tenants/secretive", ""))
	record(in.do(t, http.MethodGet, "/v1/tenants", ""))
	record(in.do(t, http.MethodPatch, "/v1/tenants/secretive", `{"pat":{"token":"`+token+` with space"}}`)) // invalid
	code, resp := in.do(t, http.MethodGet, "/v1/tenants/secretive", "")
	if code != http.StatusOK {
		t.Fatalf("GET: %d %v", code, resp)
	}
	if fp := resp["pat"].(map[string]any)["fingerprint"]; fp == "" {
		t.Error("PAT fingerprint missing")
	}
	in.stop(t)

	db, err := os.ReadFile(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{
		"responses":     strings.Join(seen, "\n"),
		"logs":          in.logs.String(),
		"database file": string(db),
	} {
		if strings.Contains(text, token[4:20]) {
			t.Errorf("the PAT appears in the %s", where)
		}
	}
	if !strings.Contains(in.logs.String(), "secretive") {
		t.Error("logs did not record the tenant at all; the redaction check would prove nothing")
	}
}
