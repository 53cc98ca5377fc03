package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/credbroker/credbroker/boltstore"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// A registry credential is added, rotated and removed over gRPC and REST;
// bad input is refused naming the request's field; the password is never
// returned, logged or stored in plaintext.
func TestRegistryCredentialsOverTheAPI(t *testing.T) {
	const first, second = "quay-first-s3cret-value", "quay-second-s3cret-value"
	ctx := context.Background()
	dir := t.TempDir()
	in := start(t, dir, server.Services{})
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("web")}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	record := func(code int, resp map[string]any) (int, map[string]any) {
		seen = append(seen, fmt.Sprint(code, resp))
		return code, resp
	}

	code, resp := record(in.do(t, http.MethodPost, "/v1/tenants/web/registryCredentials",
		`{"host":"quay.io","username":"acme+robot","password":"`+first+`","owners":["acme"],"checkImage":"quay.io/acme/base:1","expireTime":"2099-01-01T00:00:00Z"}`))
	if code != http.StatusOK {
		t.Fatalf("add: %d %v", code, resp)
	}
	entries, _ := resp["registryCredentials"].([]any)
	if len(entries) != 1 {
		t.Fatalf("add answered %v", resp)
	}
	entry := entries[0].(map[string]any)
	if entry["host"] != "quay.io" || entry["fingerprint"] == "" || entry["password"] != "" || entry["expireTime"] != "2099-01-01T00:00:00Z" {
		t.Errorf("the entry reads %v", entry)
	}

	for _, tc := range []struct {
		name, method, path, body, field string
	}{
		{"a host that is no registry host", http.MethodPost, "/v1/tenants/web/registryCredentials", `{"host":"https://x.io","username":"u","password":"p"}`, "registry_credential.host"},
		{"a duplicate", http.MethodPost, "/v1/tenants/web/registryCredentials", `{"host":"quay.io","username":"u","password":"p"}`, "registry_credential.host"},
		{"ghcr.io, the GitHub source's host", http.MethodPost, "/v1/tenants/web/registryCredentials", `{"host":"ghcr.io","username":"u","password":"p"}`, "registry_credential.host"},
		{"no password", http.MethodPost, "/v1/tenants/web/registryCredentials", `{"host":"r.example.com","username":"u"}`, "registry_credential.password"},
		{"an expiry in the past", http.MethodPost, "/v1/tenants/web/registryCredentials", `{"host":"r.example.com","username":"u","password":"p","expireTime":"2001-01-01T00:00:00Z"}`, "registry_credential.expire_time"},
		{"a rotation without a password", http.MethodPost, "/v1/tenants/web/registryCredentials:rotate", `{"host":"quay.io"}`, "password"},
		{"a rotation to a bad username", http.MethodPost, "/v1/tenants/web/registryCredentials:rotate", `{"host":"quay.io","password":"p","username":"a b"}`, "username"},
		{"a removal naming no host", http.MethodDelete, "/v1/tenants/web/registryCredentials", "", "host"},
		{"UpdateTenant writing them", http.MethodPatch, "/v1/tenants/web?updateMask=registry_credentials", `{"registryCredentials":[]}`, "update_mask"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := record(in.do(t, tc.method, tc.path, tc.body))
			if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(resp["details"]), "field:"+tc.field+" ") {
				t.Errorf("%d %v, want 400 naming %s", code, resp, tc.field)
			}
		})
	}
	if code, resp := record(in.do(t, http.MethodPost, "/v1/tenants/web/registryCredentials:rotate", `{"host":"docker.io","password":"p"}`)); code != http.StatusNotFound {
		t.Errorf("rotating a registry the tenant has none for: %d %v, want 404", code, resp)
	}

	// Rotated over gRPC: a new fingerprint, the owners and check image kept.
	rotated, err := in.tenants.RotateRegistryCredential(ctx, &credbrokerv1.RotateRegistryCredentialRequest{TenantId: "web", Host: "quay.io", Password: second})
	if err != nil {
		t.Fatal(err)
	}
	if c := rotated.GetRegistryCredentials()[0]; c.GetFingerprint() == entry["fingerprint"] || c.GetCheckImage() != "quay.io/acme/base:1" || c.GetExpireTime() != nil {
		t.Errorf("after rotating: %v", c)
	}
	// An UpdateTenant leaves them alone.
	updated, err := in.tenants.UpdateTenant(ctx, &credbrokerv1.UpdateTenantRequest{Tenant: &credbrokerv1.Tenant{Id: "web", ProbeImage: "ghcr.io/acme/app:1"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"probe_image"}}})
	if err != nil || len(updated.GetRegistryCredentials()) != 1 {
		t.Fatalf("update: %v, %v", err, updated.GetRegistryCredentials())
	}
	// A stale etag loses nothing.
	if _, err := in.tenants.RemoveRegistryCredential(ctx, &credbrokerv1.RemoveRegistryCredentialRequest{TenantId: "web", Host: "quay.io", Etag: rotated.GetEtag()}); status.Code(err) != codes.Aborted {
		t.Errorf("remove at a stale etag: %v, want ABORTED", err)
	}
	code, resp = record(in.do(t, http.MethodDelete, "/v1/tenants/web/registryCredentials?host=quay.io&etag="+updated.GetEtag(), ""))
	if left, _ := resp["registryCredentials"].([]any); code != http.StatusOK || len(left) != 0 {
		t.Errorf("remove: %d %v", code, resp)
	}
	in.stop(t)

	db, err := os.ReadFile(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{"responses": strings.Join(seen, "\n"), "logs": in.logs.String(), "database file": string(db)} {
		if strings.Contains(text, first) || strings.Contains(text, second) {
			t.Errorf("a registry password appears in the %s", where)
		}
	}
	if !strings.Contains(in.logs.String(), "registry credential rotated") {
		t.Error("the logs do not show the rotation; the redaction check would prove nothing")
	}
}
