package registrytoken

import (
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/credbroker/credbroker/broker"
)

// tenantsByNamespace is a NamespaceOwners whose tenants change.
type tenantsByNamespace struct {
	mu sync.Mutex
	m  map[string]broker.Tenant
}

func (o *tenantsByNamespace) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.m[ns]
	return t, ok, nil
}

func (o *tenantsByNamespace) set(ns string, t broker.Tenant) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[ns] = t
}

// TestAnOwnersRepositoriesStayWithTheAccountAfterARename plays whoever
// registers an organization's old login after the organization renamed
// itself: keyed by the owner's numeric id, the renamed owner keeps its
// repositories and the new claimant of the old login gets nothing of them,
// under either name.
func TestAnOwnersRepositoriesStayWithTheAccountAfterARename(t *testing.T) {
	f := newFixture(t, owners{})
	tenants := &tenantsByNamespace{m: map[string]broker.Tenant{
		"web": {ID: "web", Owner: broker.Owner{Login: "Acme", ID: 1001}, RegistryPush: true},
	}}
	svc, err := New(Config{Service: "reg", Issuer: "credbroker", OwnerPrefix: IDOwnerPrefix, Clock: f.clock}, f.keys,
		pods{"web-token": {Namespace: "web", ServiceAccount: "default", Pod: "app"}, "squat-token": {Namespace: "squat", ServiceAccount: "default", Pod: "app"}},
		tenants, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.svc, f.h = svc, svc.Handler()
	ask := func(token string, scopes ...string) []string {
		t.Helper()
		rec := f.get("reg", token, scopes...)
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return granted(f.verify(t, body(t, rec)["token"].(string)))
	}
	// Wherever acme's images could be: under its id, or its old login.
	acmes := []string{"repository:github.1001/app:pull,push", "repository:acme/app:pull,push"}
	if got := ask("web-token", acmes...); !slices.Equal(got, []string{"repository:github.1001/app:pull,push"}) {
		t.Fatalf("acme's builder before the rename: %v", got)
	}
	// acme renames itself acme-platform (same id); someone registers a
	// tenant for the login acme, which GitHub now gives to a new account.
	tenants.set("web", broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme-platform", ID: 1001}, RegistryPush: true})
	tenants.set("squat", broker.Tenant{ID: "squat", Owner: broker.Owner{Login: "acme", ID: 2002}, RegistryPush: true})
	if got := ask("squat-token", acmes...); len(got) != 0 {
		t.Errorf("the new claimant of the login acme got %v of the old acme's repositories", got)
	}
	if got := ask("web-token", acmes...); !slices.Equal(got, []string{"repository:github.1001/app:pull,push"}) {
		t.Errorf("the renamed acme lost its repositories: %v", got)
	}
	if got := ask("squat-token", "repository:github.2002/app:pull,push"); !slices.Equal(got, []string{"repository:github.2002/app:pull,push"}) {
		t.Errorf("the new account's own repositories: %v", got)
	}
}

// TestOwnerPrefixesThatALoginCouldTakeAreRefused: an id-keyed prefix
// needs a first component no login can be; every prefix must name the
// owner and keep clear of the namespaces' repositories.
func TestOwnerPrefixesThatALoginCouldTakeAreRefused(t *testing.T) {
	keys, err := NewKeys(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for prefix, ok := range map[string]bool{
		"":                    true, // the default, {login}/
		"{login}/":            true,
		"github.{id}/":        true,
		"owners/{login}/":     true,
		"gh_{id}/":            true,
		"{id}/":               false, // login 1001's too
		"owners/{id}/":        false,
		"github/":             false,
		"github.{id}":         false,
		"cluster.local/{id}/": false, // among the namespaces'
		"GitHub.{id}/":        false,
	} {
		_, err := New(Config{Service: "reg", OwnerPrefix: prefix}, keys, pods{}, owners{}, slog.New(slog.DiscardHandler))
		if (err == nil) != ok {
			t.Errorf("owner prefix %q: %v, want accepted %v", prefix, err, ok)
		}
	}
}
