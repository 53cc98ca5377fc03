package refresh

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"
	"github.com/credbroker/credbroker/broker/notify"
	"k8s.io/utils/clock"
)

func TestSyncChangesNotify(t *testing.T) {
	ctx := context.Background()
	store := brokertest.NewMemEvents()
	conditions := NewSyncConditions(notify.NewNotifier(store, false, clock.RealClock{}, nil, slog.New(slog.DiscardHandler)))
	for _, st := range []broker.NamespaceSync{
		{Namespace: "ns", State: broker.SyncSynced},
		{Namespace: "ns", State: broker.SyncConflict, Reason: broker.ReasonSecretConflict},
		{Namespace: "ns", State: broker.SyncFailed, Reason: broker.ReasonSyncFailed},
		{Namespace: "other", State: broker.SyncFailed, Reason: broker.ReasonSyncFailed},
		{Namespace: "ns", State: broker.SyncSynced},
		{Namespace: "ns", State: broker.SyncPending},
	} {
		conditions.NamespaceSynced(ctx, "t", st)
	}
	want := []string{"SYNC_CONFLICT t", "SYNC_FAILED t", "SYNC_FAILED t", "RECOVERED t"}
	if got := store.Types(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if store.Events[2].Namespace != "other" || store.Events[3].DedupeKey != "t/sync/ns" {
		t.Errorf("events %+v", store.Events)
	}
}
