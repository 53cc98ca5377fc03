package refresh

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/notify"
)

// SyncLedger keeps what the Sink reported for each tenant's namespaces,
// for the credential status, and turns a namespace that starts or stops
// failing into a condition: SYNC_FAILED or SYNC_CONFLICT while it fails,
// RECOVERED once it syncs. A nil Notifier notifies nobody.
type SyncLedger struct {
	notifier *notify.Notifier

	mu       sync.Mutex
	byTenant map[string]map[string]broker.NamespaceSync // tenant → namespace → state
}

// NewSyncLedger returns an empty ledger.
func NewSyncLedger(notifier *notify.Notifier) *SyncLedger {
	return &SyncLedger{notifier: notifier, byTenant: map[string]map[string]broker.NamespaceSync{}}
}

// NamespaceSynced implements SyncReporter.
func (l *SyncLedger) NamespaceSynced(ctx context.Context, tenantID string, st broker.NamespaceSync) {
	l.mu.Lock()
	if l.byTenant[tenantID] == nil {
		l.byTenant[tenantID] = map[string]broker.NamespaceSync{}
	}
	prev, had := l.byTenant[tenantID][st.Namespace]
	l.byTenant[tenantID][st.Namespace] = st
	l.mu.Unlock()
	if had && prev.State == st.State && prev.Reason == st.Reason {
		return
	}
	switch st.State {
	case broker.SyncSynced:
		l.notifier.Resolve(ctx, syncCondition(tenantID, st.Namespace), "the pull Secret in "+st.Namespace+" is in sync")
	case broker.SyncFailed, broker.SyncConflict:
		l.notifier.Raise(ctx, syncEvent(tenantID, st))
	}
}

// NamespaceReleased implements SyncReporter.
func (l *SyncLedger) NamespaceReleased(_ context.Context, tenantID, namespace string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byTenant[tenantID], namespace)
	if len(l.byTenant[tenantID]) == 0 {
		delete(l.byTenant, tenantID)
	}
}

// Namespaces returns a tenant's namespaces, ordered by name.
func (l *SyncLedger) Namespaces(tenantID string) []broker.NamespaceSync {
	l.mu.Lock()
	defer l.mu.Unlock()
	byNS := l.byTenant[tenantID]
	out := make([]broker.NamespaceSync, 0, len(byNS))
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		out = append(out, byNS[ns])
	}
	return out
}
