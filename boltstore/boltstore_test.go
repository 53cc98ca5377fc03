package boltstore

import (
	"context"
	"errors"
	"testing"

	"github.com/credbroker/credbroker/broker"
)

func tenant(id string) broker.Tenant {
	return broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 9}}
}

func TestVersionsGuardWritesAndSurviveReopen(t *testing.T) {
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
	if got.Version != updated.Version || got.App.InstallationID != 9 {
		t.Errorf("after reopen: %+v, want version %s", got, updated.Version)
	}
	if err := s.DeleteTenant(ctx, "a", got.Version); err != nil {
		t.Fatal(err)
	}
	recreated, err := s.CreateTenant(ctx, tenant("a"))
	if err != nil {
		t.Fatal(err)
	}
	if recreated.Version == created.Version || recreated.Version == updated.Version {
		t.Error("a re-created tenant reuses an old version; a stale etag would match it")
	}
}

func TestListTenantsFromAfterID(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
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
		}
		if got != tc.want {
			t.Errorf("ListTenants(after %q, %d) = %q, want %q", tc.after, tc.limit, got, tc.want)
		}
	}
}
