package broker

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// SyncState is the state of a tenant's pull Secret in one namespace.
type SyncState string

// Sync states.
const (
	SyncPending  SyncState = "PENDING"
	SyncSynced   SyncState = "SYNCED"
	SyncConflict SyncState = "CONFLICT"
	SyncFailed   SyncState = "FAILED"
)

// NamespaceSync is what a Sink reports for one bound namespace.
type NamespaceSync struct {
	Namespace   string
	State       SyncState
	Fingerprint string
	SyncTime    time.Time
	Reason      Reason
	Message     string
}

// Sink publishes credentials where a tenant's workloads pull from. It owns
// the fan-out: one Publish serves every namespace the tenant is bound to,
// including namespaces that appear later. What it then does in each
// namespace comes back through the SyncReporter it was given.
type Sink interface {
	// Publish makes cred the tenant's credential in all its namespaces, and
	// keeps it there until the next Publish or Remove.
	Publish(ctx context.Context, t Tenant, cred Credential) error
	// Remove withdraws the tenant's Secrets everywhere, and reports each
	// namespace it held as released.
	Remove(ctx context.Context, tenantID string) error
	// PublishedAll says every live tenant has been published: what the sink
	// holds for any other tenant may go.
	PublishedAll()
	// Report tells the tenant's workloads' owners about a credential problem
	// (a refresh that failed, with its reason) where they look: for
	// Kubernetes, an Event in each of the tenant's namespaces.
	Report(tenantID string, reason Reason, message string)
}

// Binder is a Sink that takes a tenant's namespaces before its first
// credential: the Kubernetes Syncer marks them for the admission policy at
// once, so that a tenant whose credential is late, or never pulls, still
// has its namespaces guarded. The Refresher binds every tenant it syncs.
type Binder interface {
	// Bind makes t's namespaces t's, with no credential in them yet; a
	// tenant already published is left as it is.
	Bind(ctx context.Context, t Tenant)
}

// SyncReporter is the one route by which a Sink's results come back: the
// state of a tenant's credential in each namespace. SyncLedger is the
// broker's; a Sink calls it from its own goroutines.
type SyncReporter interface {
	// NamespaceSynced records a namespace's state for a tenant.
	NamespaceSynced(ctx context.Context, tenantID string, st NamespaceSync)
	// NamespaceReleased says the tenant no longer holds the namespace.
	NamespaceReleased(ctx context.Context, tenantID, namespace string)
}

// SyncLedger keeps what the Sink reported for each tenant's namespaces,
// for the credential status, and turns a namespace that starts or stops
// failing into a condition: SYNC_FAILED or SYNC_CONFLICT while it fails,
// RECOVERED once it syncs. A nil Notifier notifies nobody.
type SyncLedger struct {
	notifier *Notifier

	mu       sync.Mutex
	byTenant map[string]map[string]NamespaceSync // tenant → namespace → state
}

// NewSyncLedger returns an empty ledger.
func NewSyncLedger(notifier *Notifier) *SyncLedger {
	return &SyncLedger{notifier: notifier, byTenant: map[string]map[string]NamespaceSync{}}
}

// NamespaceSynced implements SyncReporter.
func (l *SyncLedger) NamespaceSynced(ctx context.Context, tenantID string, st NamespaceSync) {
	l.mu.Lock()
	if l.byTenant[tenantID] == nil {
		l.byTenant[tenantID] = map[string]NamespaceSync{}
	}
	prev, had := l.byTenant[tenantID][st.Namespace]
	l.byTenant[tenantID][st.Namespace] = st
	l.mu.Unlock()
	if had && prev.State == st.State && prev.Reason == st.Reason {
		return
	}
	switch st.State {
	case SyncSynced:
		l.notifier.Resolve(ctx, syncCondition(tenantID, st.Namespace), "the pull Secret in "+st.Namespace+" is in sync")
	case SyncFailed, SyncConflict:
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
func (l *SyncLedger) Namespaces(tenantID string) []NamespaceSync {
	l.mu.Lock()
	defer l.mu.Unlock()
	byNS := l.byTenant[tenantID]
	out := make([]NamespaceSync, 0, len(byNS))
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		out = append(out, byNS[ns])
	}
	return out
}
