package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// RunCredentials checks a CredentialStore; open returns a new, empty one.
func RunCredentials(t *testing.T, open func(t *testing.T) broker.CredentialStore) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.GetCredential(ctx, "app/1/packages=read/"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("get from an empty store: %v, want ErrNotFound", err)
	}
	for i, v := range [][]byte{{1, 2, 3}, {4, 5, 0, 255}} { // a put replaces
		if err := s.PutCredential(ctx, "app/1/packages=read/", v); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetCredential(ctx, "app/1/packages=read/")
		if err != nil || !bytes.Equal(got, v) {
			t.Errorf("put %d: got %x, %v; want %x", i, got, err, v)
		}
	}
	if err := s.PutCredential(ctx, "pat/t/0123456789ab", []byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCredential(ctx, "app/1/packages=read/"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCredential(ctx, "app/1/packages=read/"); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if got, err := s.GetCredential(ctx, "pat/t/0123456789ab"); err != nil || !bytes.Equal(got, []byte{9}) {
		t.Errorf("the other key after a delete: %x, %v", got, err)
	}
	if err := s.DeleteCredential(ctx, "app/1/packages=read/"); err != nil && !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("deleting a missing key: %v", err)
	}
}

// RunEvents checks an EventStore; open returns a new, empty one.
func RunEvents(t *testing.T, open func(t *testing.T) broker.EventStore) {
	ctx := context.Background()
	s := open(t)
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var all []broker.Event
	for i := range 5 {
		ev := broker.Event{ID: fmt.Sprintf("%016x", 0x100+i), Type: broker.EventCredentialRefreshFailed, TenantID: "t",
			Namespace: "ns", Severity: broker.SeverityWarning, Reason: broker.ReasonGitHubUnavailable,
			Message: fmt.Sprintf("event %d", i), DedupeKey: "t/credential", Time: base.Add(time.Duration(i) * time.Second)}
		if err := s.AppendEvent(ctx, ev, i%2 == 0); err != nil { // 0, 2 and 4 go to the outbox
			t.Fatal(err)
		}
		all = append(all, ev)
	}
	ids := func(evs []broker.Event) string {
		out := ""
		for _, ev := range evs {
			out += ev.ID[len(ev.ID)-1:]
		}
		return out
	}
	tests := []struct {
		name string
		get  func() ([]broker.Event, error)
		want string
	}{
		{"all after nothing", func() ([]broker.Event, error) { return s.EventsAfter(ctx, "", 10) }, "01234"},
		{"after an id, limited", func() ([]broker.Event, error) { return s.EventsAfter(ctx, all[1].ID, 2) }, "23"},
		{"after the newest", func() ([]broker.Event, error) { return s.EventsAfter(ctx, all[4].ID, 10) }, ""},
		{"after an id not in the log", func() ([]broker.Event, error) { return s.EventsAfter(ctx, all[1].ID+"0", 10) }, "234"},
		{"newest first", func() ([]broker.Event, error) { return s.EventsBefore(ctx, "", 3) }, "432"},
		{"before an id", func() ([]broker.Event, error) { return s.EventsBefore(ctx, all[3].ID, 10) }, "210"},
		{"before the oldest", func() ([]broker.Event, error) { return s.EventsBefore(ctx, all[0].ID, 10) }, ""},
		{"before an id past the newest", func() ([]broker.Event, error) { return s.EventsBefore(ctx, "ffffffffffffffff", 2) }, "43"},
		{"pending, oldest first", func() ([]broker.Event, error) { return s.PendingEvents(ctx, 10) }, "024"},
	}
	for _, tc := range tests {
		got, err := tc.get()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ids(got) != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, ids(got), tc.want)
		}
	}
	got, err := s.EventsAfter(ctx, "", 1)
	if err != nil || len(got) != 1 || fmt.Sprintf("%+v", got[0]) != fmt.Sprintf("%+v", all[0]) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, all[0])
	}
	if err := s.MarkDelivered(ctx, all[2].ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PendingEvents(ctx, 10); err != nil || ids(got) != "04" {
		t.Errorf("pending after delivering 2: %q, %v", ids(got), err)
	}
	if got, err := s.EventsAfter(ctx, "", 10); err != nil || ids(got) != "01234" {
		t.Errorf("a delivered event must stay in the log: %q, %v", ids(got), err)
	}
}

// RunAudit checks an AuditStore; open returns a new, empty one that keeps
// three records.
func RunAudit(t *testing.T, open func(t *testing.T) broker.AuditStore) {
	ctx := context.Background()
	s := open(t)
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		rec := broker.AuditRecord{Time: base.Add(time.Duration(i) * time.Millisecond), Caller: fmt.Sprintf("c%d", i), AuthMethod: "token-file",
			TokenSHA256: "0123456789ab", Peer: "127.0.0.1:1", Method: "/credbroker.v1.TenantService/CreateTenant", TenantID: "t", Result: "OK"}
		if err := s.AppendAudit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.AuditRecords(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	callers := ""
	for _, rec := range got {
		callers += rec.Caller
	}
	if callers != "c4c3c2" {
		t.Errorf("records kept, newest first: %q, want the newest three", callers)
	}
	if got, _ := s.AuditRecords(ctx, 1); len(got) != 1 || got[0].TokenSHA256 != "0123456789ab" || !got[0].Time.Equal(base.Add(4*time.Millisecond)) {
		t.Errorf("round trip: %+v", got)
	}
}

// RunInbox checks an Inbox; open returns a new, empty one that remembers
// three deliveries.
func RunInbox(t *testing.T, open func(t *testing.T) broker.Inbox) {
	ctx := context.Background()
	s := open(t)
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	delivery := func(i int) broker.Delivery {
		return broker.Delivery{ID: fmt.Sprintf("d-%d", i), InstallationID: int64(100 + i), Change: broker.InstallationSuspended,
			Account: broker.Owner{Login: "acme", ID: 7, Type: broker.OwnerOrganization}, Received: base.Add(time.Duration(i) * time.Second)}
	}
	add := func(i int, want bool) {
		t.Helper()
		if added, err := s.AddDelivery(ctx, delivery(i)); err != nil || added != want {
			t.Fatalf("add d-%d: added=%v %v, want added=%v", i, added, err, want)
		}
	}
	pending := func() string {
		t.Helper()
		got, err := s.PendingDeliveries(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range got {
			ids = append(ids, d.ID)
		}
		return strings.Join(ids, " ")
	}

	add(0, true)
	add(1, true)
	add(0, false) // a redelivery or a replay
	if got := pending(); got != "d-0 d-1" {
		t.Errorf("pending %q, want d-0 d-1 in arrival order", got)
	}
	if got, _ := s.PendingDeliveries(ctx, 1); len(got) != 1 || got[0] != delivery(0) {
		t.Errorf("round trip: %+v, want %+v", got, delivery(0))
	}
	if err := s.FinishDelivery(ctx, "d-0"); err != nil {
		t.Fatal(err)
	}
	if got := pending(); got != "d-1" {
		t.Errorf("pending after finishing d-0: %q", got)
	}
	add(0, false) // finished, still remembered
	for i := 2; i < 6; i++ {
		add(i, true)
		if err := s.FinishDelivery(ctx, fmt.Sprintf("d-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Six stored, three remembered: the oldest finished ones are forgotten,
	// the pending d-1 never is.
	if got := pending(); got != "d-1" {
		t.Errorf("pending after the bound: %q, want d-1 kept", got)
	}
	add(0, true)
	add(5, false)

	// A signed body sent again under a made-up delivery id is the same
	// delivery: keyed on its digest, it is stored once, and finished by
	// its key.
	replayed := func(id string) broker.Delivery {
		d := delivery(9)
		d.ID, d.Digest = id, "sha256:"+strings.Repeat("9f", 32)
		return d
	}
	for i, id := range []string{"d-9", "fresh-1", "fresh-2"} {
		if added, err := s.AddDelivery(ctx, replayed(id)); err != nil || added != (i == 0) {
			t.Fatalf("add the body under %s: added=%v %v, want added=%v", id, added, err, i == 0)
		}
	}
	if err := s.FinishDelivery(ctx, replayed("d-9").Key()); err != nil {
		t.Fatal(err)
	}
	if added, err := s.AddDelivery(ctx, replayed("fresh-3")); err != nil || added {
		t.Errorf("the finished body under a fresh id: added=%v %v, want it remembered", added, err)
	}
}
