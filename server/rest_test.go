package server_test

import (
	"net/http"
	"testing"

	"github.com/credbroker/credbroker/server"
)

const acmeJSON = `{
  "id": "web",
  "owner": {"login": "acme", "id": 1001, "type": "OWNER_TYPE_ORGANIZATION"},
  "githubApp": {"installationId": "42", "permissions": {"packages": "read"}, "repositories": ["api"]},
  "namespaces": ["web-prod"],
  "namespaceSelector": "platform.example.com/team=web",
  "registries": ["ghcr.io"],
  "secretName": "pull",
  "probeImage": "ghcr.io/acme/api:latest",
  "allowedOwners": ["acme-shared"],
  "patchServiceAccounts": true
}`

func TestTenantLifecycleOverREST(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{})

	code, got := in.do(t, http.MethodPost, "/v1/tenants", acmeJSON)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/tenants: %d %v", code, got)
	}
	// The JSON shape the platform backend relies on: lowerCamelCase names,
	// enums by name, int64 as strings, output fields present.
	owner := got["owner"].(map[string]any)
	app := got["githubApp"].(map[string]any)
	for name, pair := range map[string][2]any{
		"id":                       {got["id"], "web"},
		"name":                     {got["name"], "tenants/web"},
		"owner.login":              {owner["login"], "acme"},
		"owner.id":                 {owner["id"], "1001"},
		"owner.type":               {owner["type"], "OWNER_TYPE_ORGANIZATION"},
		"githubApp.installationId": {app["installationId"], "42"},
		"secretName":               {got["secretName"], "pull"},
		"namespaceSelector":        {got["namespaceSelector"], "platform.example.com/team=web"},
		"patchServiceAccounts":     {got["patchServiceAccounts"], true},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %#v, want %#v", name, pair[0], pair[1])
		}
	}
	if _, ok := got["pat"]; ok {
		t.Error("an App tenant shows a pat field")
	}
	for _, field := range []string{"createTime", "updateTime", "etag"} {
		if s, _ := got[field].(string); s == "" {
			t.Errorf("%s missing from %v", field, got)
		}
	}

	code, _ = in.do(t, http.MethodPost, "/v1/tenants", acmeJSON)
	if code != http.StatusOK {
		t.Errorf("repeated identical POST: %d, want 200", code)
	}
	code, body := in.do(t, http.MethodPost, "/v1/tenants", `{"id":"web","owner":{"login":"acme","id":1001,"type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":43}}`)
	if code != http.StatusConflict {
		t.Errorf("POST with other content under the same id: %d %v, want 409", code, body)
	}

	// PATCH derives the update mask from the body: only namespaces change.
	code, got = in.do(t, http.MethodPatch, "/v1/tenants/web", `{"namespaces":["web-prod","web-canary"]}`)
	if code != http.StatusOK {
		t.Fatalf("PATCH: %d %v", code, got)
	}
	if ns := got["namespaces"].([]any); len(ns) != 2 || ns[1] != "web-canary" {
		t.Errorf("namespaces after PATCH = %v", ns)
	}
	if got["secretName"] != "pull" || got["probeImage"] != "ghcr.io/acme/api:latest" {
		t.Errorf("PATCH changed fields it did not name: %v", got)
	}

	code, got = in.do(t, http.MethodGet, "/v1/tenants?pageSize=10", "")
	if code != http.StatusOK || len(got["tenants"].([]any)) != 1 {
		t.Errorf("GET /v1/tenants: %d %v", code, got)
	}

	if code, body := in.do(t, http.MethodDelete, "/v1/tenants/web", ""); code != http.StatusOK {
		t.Errorf("DELETE: %d %v", code, body)
	}
	if code, _ := in.do(t, http.MethodGet, "/v1/tenants/web", ""); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
}

func TestRESTErrors(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{})
	tests := []struct {
		name, method, path, body string
		code                     int
		field                    string // a field violation that must be named, if any
	}{
		{"bad owner login", http.MethodPost, "/v1/tenants",
			`{"id":"x","owner":{"login":"-x","id":1,"type":"OWNER_TYPE_USER"},"githubApp":{"installationId":1}}`,
			http.StatusBadRequest, "tenant.owner.login"},
		{"bad namespace", http.MethodPost, "/v1/tenants",
			`{"id":"x","owner":{"login":"x","id":1,"type":"OWNER_TYPE_USER"},"githubApp":{"installationId":1},"namespaces":["UPPER"]}`,
			http.StatusBadRequest, "tenant.namespaces[0]"},
		{"unknown JSON field", http.MethodPost, "/v1/tenants",
			`{"id":"x","nameSpaces":["a"]}`, http.StatusBadRequest, ""},
		{"malformed JSON", http.MethodPost, "/v1/tenants", `{"id":`, http.StatusBadRequest, ""},
		{"bad id in path", http.MethodGet, "/v1/tenants/Not_A_Label", "", http.StatusBadRequest, "id"},
		{"missing tenant", http.MethodGet, "/v1/tenants/ghost", "", http.StatusNotFound, ""},
		{"patch missing tenant", http.MethodPatch, "/v1/tenants/ghost", `{"namespaces":["a"]}`, http.StatusNotFound, ""},
		{"bad page token", http.MethodGet, "/v1/tenants?pageToken=!!", "", http.StatusBadRequest, "page_token"},
		{"credential status of a missing tenant", http.MethodGet, "/v1/tenants/x/credential", "", http.StatusNotFound, ""},
		{"image validation for a missing tenant", http.MethodPost, "/v1/tenants/x/images:validate", `{"image":"ghcr.io/x/y"}`, http.StatusNotFound, ""},
		{"image validation without an image", http.MethodPost, "/v1/tenants/x/images:validate", `{}`, http.StatusBadRequest, "image"},
		{"pod validation without containers", http.MethodPost, "/v1/tenants/x/pods:validate", `{"podSpec":{}}`, http.StatusBadRequest, "pod_spec.containers"},
		{"events: page size too large", http.MethodGet, "/v1/events?pageSize=5000", "", http.StatusBadRequest, "page_size"},
		{"events: unknown type", http.MethodGet, "/v1/events?types=EVENT_TYPE_UNSPECIFIED", "", http.StatusBadRequest, "types[0]"},
		{"events: bad tenant", http.MethodGet, "/v1/events?tenantId=Not_A_Label", "", http.StatusBadRequest, "tenant_id"},
		{"events: bad page token", http.MethodGet, "/v1/events?pageToken=zz", "", http.StatusBadRequest, "page_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := in.do(t, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d %v, want %d", code, body, tc.code)
			}
			if msg, _ := body["message"].(string); msg == "" {
				t.Errorf("error body has no message: %v", body)
			}
			if tc.field != "" && !namesField(body, tc.field) {
				t.Errorf("body %v does not name field %s", body, tc.field)
			}
		})
	}
}

// namesField reports whether a gateway error body carries a BadRequest field
// violation for field.
func namesField(body map[string]any, field string) bool {
	details, _ := body["details"].([]any)
	for _, d := range details {
		detail, _ := d.(map[string]any)
		if detail["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		violations, _ := detail["fieldViolations"].([]any)
		for _, v := range violations {
			if v.(map[string]any)["field"] == field {
				return true
			}
		}
	}
	return false
}
