package boltstore

import (
	"context"
	"testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/storetest"
)

func tenant(id string) broker.Tenant {
	return broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 9}}
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) broker.Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestTenantsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.CreateTenant(ctx, tenant("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	got, err := s.GetTenant(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != created.Version || got.App.InstallationID != 9 {
		t.Errorf("after reopen: %+v, want version %s", got, created.Version)
	}
	if _, err := s.CreateTenant(ctx, tenant("b")); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.GetTenant(ctx, "b"); b.Version == created.Version {
		t.Error("versions restarted after reopen")
	}
}
