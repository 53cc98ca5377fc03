package broker

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"k8s.io/utils/clock"
)

func TestNotifierDeduplicates(t *testing.T) {
	ctx := context.Background()
	store := newMemEvents()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	n := NewNotifier(store, true, clocktesting.NewFakePassiveClock(now), nil, slog.New(slog.DiscardHandler))
	failed := Event{Type: EventCredentialRefreshFailed, TenantID: "a", Reason: ReasonGitHubUnavailable, DedupeKey: "a/credential"}
	steps := []struct {
		name   string
		do     func() bool
		wanted bool
	}{
		{"a new condition", func() bool { return n.Raise(ctx, failed) }, true},
		{"the same again", func() bool { return n.Raise(ctx, failed) }, false},
		{"another reason", func() bool {
			ev := failed
			ev.Reason = ReasonRateLimited
			return n.Raise(ctx, ev)
		}, true},
		{"another type", func() bool {
			ev := failed
			ev.Type, ev.Reason = EventCredentialRevoked, ReasonTokenRevoked
			return n.Raise(ctx, ev)
		}, true},
		{"another condition of the tenant", func() bool {
			return n.Raise(ctx, Event{Type: EventProbeFailed, TenantID: "a", DedupeKey: "a/probe"})
		}, true},
		{"recovery", func() bool { return n.Resolve(ctx, "a/credential", "ok") }, true},
		{"recovery again", func() bool { return n.Resolve(ctx, "a/credential", "ok") }, false},
		{"recovery of what never failed", func() bool { return n.Resolve(ctx, "b/credential", "ok") }, false},
	}
	for _, step := range steps {
		if got := step.do(); got != step.wanted {
			t.Errorf("%s: wrote %v, want %v", step.name, got, step.wanted)
		}
		now = now.Add(time.Nanosecond) // ids stay unique even if the clock does not move
	}
	want := []string{"CREDENTIAL_REFRESH_FAILED a", "CREDENTIAL_REFRESH_FAILED a", "CREDENTIAL_REVOKED a", "PROBE_FAILED a", "RECOVERED a"}
	if got := store.types(); !slices.Equal(got, want) {
		t.Errorf("log %v, want %v", got, want)
	}
	pending, _ := store.PendingEvents(ctx, 100)
	if len(pending) != len(want) {
		t.Errorf("%d events queued for the webhook, want %d", len(pending), len(want))
	}
	for i := 1; i < len(store.events); i++ {
		if store.events[i].ID <= store.events[i-1].ID || !ValidEventID(store.events[i].ID) {
			t.Errorf("ids %q then %q: must be 16 hex digits and increase", store.events[i-1].ID, store.events[i].ID)
		}
	}

	// A restarted notifier knows the open conditions from the log.
	restarted := NewNotifier(store, true, clocktesting.NewFakePassiveClock(now.Add(-time.Hour)), nil, slog.New(slog.DiscardHandler))
	if err := restarted.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if restarted.Resolve(ctx, "a/credential", "ok") {
		t.Error("open conditions were not rebuilt from the log: a recovered condition recovered again")
	}
	if restarted.Raise(ctx, Event{Type: EventProbeFailed, TenantID: "a", DedupeKey: "a/probe"}) {
		t.Error("a restart raised a known condition again")
	}
	if !restarted.Resolve(ctx, "a/probe", "ok") {
		t.Fatal("a restart forgot to announce a recovery")
	}
	// Even with its clock an hour behind, the new id sorts after the old ones.
	if last := store.events[len(store.events)-1]; last.ID <= store.events[len(store.events)-2].ID {
		t.Errorf("id %s after %s", last.ID, store.events[len(store.events)-2].ID)
	}
}

func TestSyncChangesNotify(t *testing.T) {
	ctx := context.Background()
	store := newMemEvents()
	conditions := NewSyncConditions(NewNotifier(store, false, clock.RealClock{}, nil, slog.New(slog.DiscardHandler)))
	for _, st := range []NamespaceSync{
		{Namespace: "ns", State: SyncSynced},
		{Namespace: "ns", State: SyncConflict, Reason: ReasonSecretConflict},
		{Namespace: "ns", State: SyncFailed, Reason: ReasonSyncFailed},
		{Namespace: "other", State: SyncFailed, Reason: ReasonSyncFailed},
		{Namespace: "ns", State: SyncSynced},
		{Namespace: "ns", State: SyncPending},
	} {
		conditions.NamespaceSynced(ctx, "t", st)
	}
	want := []string{"SYNC_CONFLICT t", "SYNC_FAILED t", "SYNC_FAILED t", "RECOVERED t"}
	if got := store.types(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if store.events[2].Namespace != "other" || store.events[3].DedupeKey != "t/sync/ns" {
		t.Errorf("events %+v", store.events)
	}
}
