package broker_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"

	"k8s.io/utils/clock"
)

// countingStore counts the reads of tenants.
type countingStore struct {
	*brokertest.MemStore
	gets atomic.Int64
}

func (s *countingStore) GetTenant(ctx context.Context, id string) (broker.Tenant, error) {
	s.gets.Add(1)
	return s.MemStore.GetTenant(ctx, id)
}

// A sole writer answers lookups from memory, and its own writes are seen at
// once.
func TestASoleWritersLookupsAreServedFromMemoryAndFollowItsWrites(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{MemStore: brokertest.NewMemStore()}
	reg := broker.NewTenants(store, nil, nil, clock.RealClock{}, broker.TenantsConfig{SoleWriter: true})
	if _, _, err := reg.Create(ctx, brokertest.AppTenantFor("web")); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := reg.Lookup(ctx, "web"); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.gets.Load(); n > 2 { // Create's own check, and the first lookup
		t.Errorf("100 lookups read the store %d times", n)
	}
	if _, err := reg.Update(ctx, "web", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.AllowedOwners = []string{"acme-shared"}
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.Lookup(ctx, "web"); err != nil || len(got.AllowedOwners) != 1 {
		t.Errorf("after an update, lookup answers %v, %v", got.AllowedOwners, err)
	}
	// Read (GetTenant's) is as exact as Get, etag included.
	fromStore, err := reg.Get(ctx, "web")
	if got, rerr := reg.Read(ctx, "web"); err != nil || rerr != nil || got.Version != fromStore.Version || len(got.AllowedOwners) != 1 {
		t.Errorf("after an update, Read answers version %q %v (%v), the store %q (%v)", got.Version, got.AllowedOwners, rerr, fromStore.Version, err)
	}
	if err := reg.Delete(ctx, "web", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Lookup(ctx, "web"); err == nil {
		t.Error("a deleted tenant is still looked up")
	}
	// Without SoleWriter every lookup reads the store: other replicas write.
	shared := &countingStore{MemStore: brokertest.NewMemStore()}
	other := broker.NewTenants(shared, nil, nil, clock.RealClock{}, broker.TenantsConfig{})
	if _, _, err := other.Create(ctx, brokertest.AppTenantFor("web")); err != nil {
		t.Fatal(err)
	}
	before := shared.gets.Load()
	for range 10 {
		_, _ = other.Lookup(ctx, "web")
	}
	if n := shared.gets.Load() - before; n != 10 {
		t.Errorf("10 lookups of a shared store read it %d times", n)
	}
}
