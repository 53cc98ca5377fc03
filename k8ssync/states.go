package k8ssync

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/credbroker/credbroker/broker"
)

// syncStates is the one record of each tenant's namespaces: what the
// Syncer last did or found there. The Syncer decides by it (a Secret
// already reported in sync, a conflict already told), the credential status
// reads it (Syncer.Namespaces), and the reporter hears each change of a
// state or its reason, which the broker turns into conditions.
type syncStates struct {
	reporter broker.SyncReporter // nil: nobody hears

	mu       sync.RWMutex
	byTenant map[string]map[string]broker.NamespaceSync // tenant → namespace → state
}

func newSyncStates(reporter broker.SyncReporter) *syncStates {
	return &syncStates{reporter: reporter, byTenant: map[string]map[string]broker.NamespaceSync{}}
}

// get returns the tenant's state in ns, if it has one.
func (r *syncStates) get(tenantID, ns string) (broker.NamespaceSync, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st, ok := r.byTenant[tenantID][ns]
	return st, ok
}

// set records the tenant's state in st.Namespace, and tells the reporter
// when its state or reason changed.
func (r *syncStates) set(ctx context.Context, tenantID string, st broker.NamespaceSync) {
	r.mu.Lock()
	if r.byTenant[tenantID] == nil {
		r.byTenant[tenantID] = map[string]broker.NamespaceSync{}
	}
	prev, had := r.byTenant[tenantID][st.Namespace]
	r.byTenant[tenantID][st.Namespace] = st
	r.mu.Unlock()
	if r.reporter != nil && (!had || prev.State != st.State || prev.Reason != st.Reason) {
		r.reporter.NamespaceSynced(ctx, tenantID, st)
	}
}

// clear forgets the tenant's state in ns: it no longer holds or wants it.
func (r *syncStates) clear(tenantID, ns string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byTenant[tenantID], ns)
	if len(r.byTenant[tenantID]) == 0 {
		delete(r.byTenant, tenantID)
	}
}

// drop forgets every state of a removed tenant.
func (r *syncStates) drop(tenantID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byTenant, tenantID)
}

// of returns the tenant's states, ordered by namespace.
func (r *syncStates) of(tenantID string) []broker.NamespaceSync {
	r.mu.RLock()
	defer r.mu.RUnlock()
	byNS := r.byTenant[tenantID]
	out := make([]broker.NamespaceSync, 0, len(byNS))
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		out = append(out, byNS[ns])
	}
	return out
}
