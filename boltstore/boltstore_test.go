package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

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
	t.Run("GitHub deliveries", func(t *testing.T) {
		storetest.RunInbox(t, func(t *testing.T) broker.Inbox {
			s := open(t)
			s.MaxDeliveries = 3
			return s
		})
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

// Audit records appended at once are committed in groups; every one is
// on disk when its call returns, in one sequence, the oldest trimmed.
func TestConcurrentAuditRecordsAreAllDurable(t *testing.T) {
	const callers = 300
	for _, tc := range []struct {
		name      string
		maxEvents int
		want      int
	}{
		{"all kept", 1000, callers},
		{"trimmed across groups", 50, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			s.MaxEvents = tc.maxEvents
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for i := range callers {
				wg.Go(func() { errs <- s.AppendAudit(ctx, broker.AuditRecord{Caller: fmt.Sprintf("c%03d", i), Result: "OK"}) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openIn(t, dir)
			s.MaxEvents = tc.maxEvents
			got, err := s.AuditRecords(ctx, 2*callers)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, rec := range got {
				seen[rec.Caller] = true
			}
			if len(got) != tc.want || len(seen) != tc.want {
				t.Errorf("after reopen: %d records of %d callers, want %d", len(got), len(seen), tc.want)
			}
			keys := 0
			_ = s.db.View(func(tx *bolt.Tx) error { keys = tx.Bucket(auditBucket).Stats().KeyN; return nil })
			if keys != tc.want {
				t.Errorf("%d keys in the audit bucket, want %d", keys, tc.want)
			}
		})
	}
}

// BenchmarkAppendAudit is audited calls arriving together: 32 callers,
// each waiting for its record to be durable. records/s is 1e9 / ns/op.
func BenchmarkAppendAudit(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	rec := broker.AuditRecord{Caller: "admin", AuthMethod: "token-file", Method: "/credbroker.v1.TenantService/CreateTenant", TenantID: "web", Result: "OK"}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.AppendAudit(context.Background(), rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// damage overwrites every page of the file but the two meta pages with
// 0xFF, as a disk that lost the data under a valid header would.
func damage(t *testing.T, path string, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte{0xFF}, int(info.Size())-2*pageSize)
	if _, err := f.WriteAt(garbage, int64(2*pageSize)); err != nil {
		t.Fatal(err)
	}
}

func fill(t *testing.T, s *Store) {
	t.Helper()
	for i := range 50 {
		if _, err := s.CreateTenant(context.Background(), tenant(fmt.Sprintf("t-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// A damaged file is a clear startup error naming the file and the way
// out, not a panic.
func TestACorruptFileIsAStartupError(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	pageSize := s.db.Info().PageSize
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	damage(t, path, pageSize)
	_, err = Open(dir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move it aside") {
		t.Errorf("open of a damaged file: %v, want ErrCorrupt naming %s and the way out", err, path)
	}
}

// A file damaged under a running store fails the calls that meet the
// damage, and every later one, with ErrCorrupt; the process goes on and
// is reported not ready.
func TestDamageUnderARunningStoreFailsCallsWithoutAPanic(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	fill(t, s)
	damage(t, filepath.Join(dir, FileName), s.db.Info().PageSize)
	if _, err := s.ListTenants(context.Background(), "", 100); !errors.Is(err, ErrCorrupt) {
		t.Errorf("list after damage: %v, want ErrCorrupt", err)
	}
	if _, err := s.CreateTenant(context.Background(), tenant("late")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("create after damage: %v, want ErrCorrupt", err)
	}
	if err := s.AppendAudit(context.Background(), broker.AuditRecord{Caller: "late"}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("audit after damage: %v, want ErrCorrupt", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ping after damage: %v, want ErrCorrupt (readiness fails)", err)
	}
}

func openIn(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
