package broker

import (
	"errors"
	"strings"
	"testing"
)

func ValidTenant() Tenant {
	return Tenant{
		ID:    "web",
		Owner: Owner{Login: "acme", ID: 1, Type: OwnerOrganization},
		App:   &GitHubApp{InstallationID: 5},
	}.WithDefaults()
}

func TestValidateAcceptsGoodTenants(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Tenant)
	}{
		{"minimal app tenant", func(*Tenant) {}},
		{"39-character login", func(t *Tenant) { t.Owner.Login = strings.Repeat("a", 39) }},
		{"PAT tenant", func(t *Tenant) { t.App, t.PAT = nil, &PAT{Token: "ghp_abcdefghijklmnopqrstuvwxyz0123456789"} }},
		{"set-based selector", func(t *Tenant) { t.NamespaceSelector = "team in (a,b),!legacy" }},
		{"registry with port", func(t *Tenant) { t.Registries = []string{"registry.local:5000"} }},
		{"probe of an allowed owner, any case", func(t *Tenant) {
			t.AllowedOwners = []string{"Shared"}
			t.ProbeImage = "ghcr.io/shared/base@sha256:" + strings.Repeat("a", 64)
		}},
		{"probe of the owner, owner in mixed case", func(t *Tenant) {
			t.Owner.Login = "Acme"
			t.ProbeImage = "ghcr.io/acme/api:1"
		}},
		{"pull mode PROVIDER", func(t *Tenant) { t.PullMode = PullProvider }},
		{"pull mode BOTH", func(t *Tenant) { t.PullMode = PullBoth }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := ValidTenant()
			tc.edit(&tn)
			if err := tn.validate(true); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

func TestValidateReportsEveryViolation(t *testing.T) {
	tn := Tenant{ID: "", Owner: Owner{Login: "x-"}, Namespaces: []string{"ok", "ok"}}.WithDefaults()
	err := tn.validate(true)
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("err = %v, want *InvalidError", err)
	}
	var fields []string
	for _, v := range invalid.Violations {
		fields = append(fields, v.Field)
	}
	want := "id owner.login owner.id owner.type credential namespaces[1]"
	if got := strings.Join(fields, " "); got != want {
		t.Errorf("violations on %q, want %q", got, want)
	}
}

func TestValidateNeverQuotesAToken(t *testing.T) {
	for _, token := range []string{"github_pat_11SECRETSECRET", "ghp_SECRET with space", "ghp_SECRET\n"} {
		tn := ValidTenant()
		tn.App, tn.PAT = nil, &PAT{Token: token}
		err := tn.validate(true)
		if err == nil {
			t.Fatalf("token %q accepted", token)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}

// A selector must name namespaces by a label someone gave them: one that
// matches nearly everything, or lists names through the name label, is
// refused with the field named.
func TestNamespaceSelectorsMustSelect(t *testing.T) {
	tests := []struct {
		selector string
		ok       bool
	}{
		{"team=web", true},
		{"team==web", true},
		{"team in (web,api)", true},
		{"team=web,!legacy", true},
		{"!does-not-exist", false},
		{"x!=y", false},
		{"team notin (ops)", false},
		{"team", false},
		{"kubernetes.io/metadata.name=kube-system", false},
		{"team=web,kubernetes.io/metadata.name in (other)", false},
		{"credbroker.io/tenant=victim", false},
		{"team=web,credbroker.io/tenant", false},
	}
	for _, tc := range tests {
		t.Run(tc.selector, func(t *testing.T) {
			tn := ValidTenant()
			tn.NamespaceSelector = tc.selector
			err := tn.validate(true)
			var invalid *InvalidError
			switch {
			case tc.ok && err != nil:
				t.Errorf("validate: %v", err)
			case !tc.ok && (!errors.As(err, &invalid) || invalid.Violations[0].Field != "namespace_selector"):
				t.Errorf("validate: %v, want namespace_selector refused", err)
			}
		})
	}
}

// A pull mode the API does not know (a number outside the enum) is named,
// not taken for the default.
func TestAnUnknownPullModeIsRefused(t *testing.T) {
	tn := ValidTenant()
	tn.PullMode = "PULL_MODE_7"
	var invalid *InvalidError
	if err := tn.validate(true); !errors.As(err, &invalid) || invalid.Violations[0].Field != "pull_mode" {
		t.Errorf("validate: %v, want pull_mode refused", err)
	}
	if d := (Tenant{}).WithDefaults(); d.PullMode != PullSecret || !d.WantsSecrets() || d.ServesProvider() {
		t.Errorf("the default pull mode %q: want SECRET, Secrets only", d.PullMode)
	}
}
