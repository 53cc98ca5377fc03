package boltstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/storetest"
)

func tenant(id string) broker.Tenant {
	return broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 9}}
}

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) broker.Store { return open(t) })
	t.Run("credentials", func(t *testing.T) {
		storetest.RunCredentials(t, func(t *testing.T) broker.CredentialStore { return open(t) })
	})
	t.Run("events", func(t *testing.T) {
		storetest.RunEvents(t, func(t *testing.T) broker.EventStore { return open(t) })
	})
	t.Run("audit", func(t *testing.T) {
		storetest.RunAudit(t, func(t *testing.T) broker.AuditStore {
			s := open(t)
			s.MaxEvents = 3
			return s
		})
	})
}

func TestEventLogIsBoundedButKeepsPendingEvents(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	s.MaxEvents = 100
	for i := range s.MaxEvents + 200 {
		ev := broker.Event{ID: fmt.Sprintf("%016x", i+1), Type: broker.EventRecovered, TenantID: "t"}
		if err := s.AppendEvent(ctx, ev, i == 0); err != nil { // only the first awaits delivery
			t.Fatal(err)
		}
	}
	oldest, err := s.EventsAfter(ctx, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	// The pending first event stays; the 200 after it went.
	if len(oldest) != 2 || oldest[0].ID != fmt.Sprintf("%016x", 1) || oldest[1].ID != fmt.Sprintf("%016x", 202) {
		t.Errorf("oldest events after trimming: %+v", oldest)
	}
	var n int
	for after := ""; ; {
		page, err := s.EventsAfter(ctx, after, 30)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if len(page) < 30 {
			break
		}
		after = page[len(page)-1].ID
	}
	if n != s.MaxEvents {
		t.Errorf("%d events kept, want %d", n, s.MaxEvents)
	}
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
