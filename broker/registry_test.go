package broker_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
)

func newRegistry(t *testing.T, withKey bool) (*broker.Registry, *boltstore.Store) {
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
	return broker.NewRegistry(store, sealer, nil, clock.RealClock{}), store
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
			err := broker.NewRegistry(store, tc.sealer, nil, clock.RealClock{}).CheckSealed(ctx)
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
