// Package storetest is the contract of broker.Store as tests: every Store
// implementation runs Run against a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/credbroker/credbroker/broker"
)

func tenant(id string) broker.Tenant {
	return broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 9}, PAT: nil, Namespaces: []string{id + "-ns"}}
}

// Run checks a Store; open returns a new, empty one.
func Run(t *testing.T, open func(t *testing.T) broker.Store) {
	t.Run("versions guard writes", func(t *testing.T) { versionsGuardWrites(t, open(t)) })
	t.Run("list from an id", func(t *testing.T) { listFromAnID(t, open(t)) })
	t.Run("round trip keeps every field", func(t *testing.T) { roundTrip(t, open(t)) })
}

func versionsGuardWrites(t *testing.T, s broker.Store) {
	ctx := context.Background()
	created, err := s.CreateTenant(ctx, tenant("a"))
	if err != nil {
		t.Fatal(err)
	}
	if created.Version == "" {
		t.Fatal("create set no version")
	}
	if _, err := s.CreateTenant(ctx, tenant("a")); !errors.Is(err, broker.ErrAlreadyExists) {
		t.Errorf("second create: %v, want ErrAlreadyExists", err)
	}
	updated, err := s.UpdateTenant(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Version == created.Version {
		t.Error("update kept the version")
	}
	if _, err := s.UpdateTenant(ctx, created); !errors.Is(err, broker.ErrConflict) {
		t.Errorf("update at a stale version: %v, want ErrConflict", err)
	}
	if err := s.DeleteTenant(ctx, "a", created.Version); !errors.Is(err, broker.ErrConflict) {
		t.Errorf("delete at a stale version: %v, want ErrConflict", err)
	}
	got, err := s.GetTenant(ctx, "a")
	if err != nil || got.Version != updated.Version {
		t.Fatalf("get: %+v, %v; want version %s", got, err, updated.Version)
	}
	if err := s.DeleteTenant(ctx, "a", got.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTenant(ctx, "a"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteTenant(ctx, "a", ""); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("delete of a missing tenant: %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateTenant(ctx, got); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("update of a missing tenant: %v, want ErrNotFound", err)
	}
	recreated, err := s.CreateTenant(ctx, tenant("a"))
	if err != nil {
		t.Fatal(err)
	}
	if recreated.Version == created.Version || recreated.Version == updated.Version {
		t.Error("a re-created tenant reuses an old version; a stale etag would match it")
	}
}

func listFromAnID(t *testing.T, s broker.Store) {
	ctx := context.Background()
	for _, id := range []string{"c", "a", "d", "b"} {
		if _, err := s.CreateTenant(ctx, tenant(id)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		after string
		limit int
		want  string
	}{
		{"", 10, "abcd"},
		{"", 2, "ab"},
		{"b", 10, "cd"},
		{"bb", 10, "cd"}, // an id that does not exist (deleted meanwhile)
		{"d", 10, ""},
	}
	for _, tc := range tests {
		page, err := s.ListTenants(ctx, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, tn := range page {
			got += tn.ID
			if tn.Version == "" {
				t.Errorf("listed tenant %s has no version", tn.ID)
			}
		}
		if got != tc.want {
			t.Errorf("ListTenants(after %q, %d) = %q, want %q", tc.after, tc.limit, got, tc.want)
		}
	}
}

func roundTrip(t *testing.T, s broker.Store) {
	ctx := context.Background()
	in := tenant("full")
	in.App = nil
	in.PAT = &broker.PAT{Sealed: []byte{1, 2, 3, 255}, Fingerprint: "0123456789ab"}
	in.NamespaceSelector = "team in (a,b)"
	in.Registries = []string{"ghcr.io", "registry.local:5000"}
	in.SecretName, in.ProbeImage = "pull", "ghcr.io/acme/base:1"
	in.AllowedOwners, in.PatchServiceAccounts = []string{"shared"}, true
	if _, err := s.CreateTenant(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTenant(ctx, "full")
	if err != nil {
		t.Fatal(err)
	}
	got.Version = ""
	if fmt.Sprintf("%+v %x", got, got.PAT.Sealed) != fmt.Sprintf("%+v %x", in, in.PAT.Sealed) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, in)
	}
}
