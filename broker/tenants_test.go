package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
)

func newRegistry(t *testing.T, withKey bool) (*broker.Tenants, *boltstore.Store) {
	t.Helper()
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	var sealer *broker.Sealer
	if withKey {
		if sealer, err = broker.NewSealer(bytes.Repeat([]byte{3}, broker.KeySize)); err != nil {
			t.Fatal(err)
		}
	}
	return broker.NewTenants(store, sealer, nil, clock.RealClock{}, broker.TenantsConfig{}), store
}

func patTenant(id, token string) broker.Tenant {
	return broker.Tenant{ID: id, Owner: broker.Owner{Login: "octo", ID: 2, Type: broker.OwnerUser}, PAT: &broker.PAT{Token: token}}
}

func TestPATTenantsNeedAnEncryptionKey(t *testing.T) {
	reg, store := newRegistry(t, false)
	_, _, err := reg.Create(context.Background(), patTenant("p", "ghp_x"))
	if !errors.Is(err, broker.ErrNoEncryptionKey) {
		t.Fatalf("create PAT tenant without key: %v, want ErrNoEncryptionKey", err)
	}
	if _, err := store.GetTenant(context.Background(), "p"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("refused tenant was stored anyway: %v", err)
	}
}

func TestCheckSealedNamesTheTenantWhosePATCannotBeOpened(t *testing.T) {
	ctx := context.Background()
	withKey, store := newRegistry(t, true)
	if _, _, err := withKey.Create(ctx, patTenant("ci", "ghp_check")); err != nil {
		t.Fatal(err)
	}
	if err := withKey.CheckSealed(ctx); err != nil {
		t.Errorf("CheckSealed with the right key: %v", err)
	}
	otherKey, _ := broker.NewSealer(bytes.Repeat([]byte{4}, broker.KeySize))
	tests := []struct {
		name   string
		sealer *broker.Sealer
		want   error
	}{
		{"no key", nil, broker.ErrNoEncryptionKey},
		{"wrong key", otherKey, broker.ErrUnseal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := broker.NewTenants(store, tc.sealer, nil, clock.RealClock{}, broker.TenantsConfig{}).CheckSealed(ctx)
			if !errors.Is(err, tc.want) || !bytes.Contains([]byte(err.Error()), []byte(`"ci"`)) {
				t.Errorf("CheckSealed = %v, want %v naming tenant \"ci\"", err, tc.want)
			}
		})
	}
}

func TestConcurrentUpdatesWithoutEtagAllApply(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t, true)
	base := broker.Tenant{ID: "busy", Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 1}}
	if _, _, err := reg.Create(ctx, base); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for _, ns := range names {
		wg.Go(func() {
			_, err := reg.Update(ctx, "busy", "", func(cur broker.Tenant) (broker.Tenant, error) {
				cur.Namespaces = append(cur.Namespaces, ns)
				return cur, nil
			})
			if err != nil {
				t.Errorf("update adding %s: %v", ns, err)
			}
		})
	}
	wg.Wait()
	got, err := reg.Get(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Namespaces) != len(names) {
		t.Errorf("namespaces = %v: concurrent updates were lost", got.Namespaces)
	}
}

// An App tenant asks for at most what the platform allows: anything more is
// refused at registration, naming the field, and loses nothing.
func TestAppPermissionsComeFromTheAllowList(t *testing.T) {
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()
	app := func(id string, perms map[string]string) broker.Tenant {
		return broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
			App: &broker.GitHubApp{InstallationID: 1, Permissions: perms}}
	}
	tests := []struct {
		name    string
		allowed map[string]string
		asks    map[string]string
		ok      bool
	}{
		{"the default asks for packages: read", nil, nil, true},
		{"packages: read by name", nil, map[string]string{"packages": "read"}, true},
		{"packages: write past a read-only default", nil, map[string]string{"packages": "write"}, false},
		{"contents: read, not granted at all", nil, map[string]string{"packages": "read", "contents": "read"}, false},
		{"packages: write where the platform grants it", map[string]string{"packages": "write"}, map[string]string{"packages": "write"}, true},
		{"read under a write grant", map[string]string{"packages": "write", "metadata": "read"}, map[string]string{"metadata": "read"}, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := broker.NewTenants(store, nil, nil, clock.RealClock{}, broker.TenantsConfig{AppPermissions: tc.allowed})
			id := fmt.Sprintf("app-%d", i)
			_, _, err := reg.Create(ctx, app(id, tc.asks))
			var invalid *broker.InvalidError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("create: %v", err)
			case !tc.ok && (!errors.As(err, &invalid) || invalid.Violations[0].Field != "github_app.permissions"):
				t.Fatalf("create: %v, want github_app.permissions named", err)
			case !tc.ok:
				if _, err := reg.Get(ctx, id); !errors.Is(err, broker.ErrNotFound) {
					t.Errorf("a refused tenant was stored: %v", err)
				}
			}
		})
	}
}

// Reserved namespaces, and in namespaced mode namespaces the broker was
// not granted, are never claimed, and credbroker's own object names are
// never a tenant's Secret name: all refused at registration, naming the
// field.
func TestNamespacesOutsideTheScopeAndReservedNamesAreRefused(t *testing.T) {
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	clusterWide := broker.NamespaceScope{Reserved: []string{"credbroker", "platform"}}
	namespaced := broker.NamespaceScope{Reserved: []string{"credbroker"}, Granted: []string{"web", "api", "shop", "credbroker", "kube-public"}}
	tests := []struct {
		name       string
		scope      broker.NamespaceScope
		namespaces []string
		secretName string
		field      string // "" when the registration is fine
	}{
		{"kube-system", clusterWide, []string{"web", "kube-system"}, "", "namespaces[1]"},
		{"any kube- namespace", clusterWide, []string{"kube-node-lease"}, "", "namespaces[0]"},
		{"the broker's own", clusterWide, []string{"credbroker"}, "", "namespaces[0]"},
		{"a listed one", clusterWide, []string{"platform"}, "", "namespaces[0]"},
		{"a Secret named like credbroker's records", clusterWide, nil, "credbroker-tenant-web", "secret_name"},
		{"namespaces that only look alike", clusterWide, []string{"web", "kubernetes-apps"}, "", ""},
		{"namespaced: one not granted", namespaced, []string{"web", "payments"}, "", "namespaces[1]"},
		{"namespaced: a grant does not lift a reservation", namespaced, []string{"credbroker"}, "", "namespaces[0]"},
		{"namespaced: nor kube-*", namespaced, []string{"kube-public"}, "", "namespaces[0]"},
		{"namespaced: granted ones", namespaced, []string{"api", "shop"}, "", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := broker.NewTenants(store, nil, nil, clock.RealClock{}, broker.TenantsConfig{Scope: tc.scope})
			tn := broker.Tenant{ID: fmt.Sprintf("t-%d", i), Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
				App: &broker.GitHubApp{InstallationID: 1}, Namespaces: tc.namespaces, SecretName: tc.secretName}
			_, _, err := reg.Create(context.Background(), tn)
			if tc.field == "" {
				if err != nil {
					t.Errorf("create: %v", err)
				}
				return
			}
			var invalid *broker.InvalidError
			if !errors.As(err, &invalid) || !slices.ContainsFunc(invalid.Violations, func(v broker.FieldViolation) bool { return v.Field == tc.field }) {
				t.Errorf("create: %v, want %s named", err, tc.field)
			}
		})
	}
}
