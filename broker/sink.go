package broker

import (
	"context"
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
// including namespaces that appear later. It keeps the state of each
// namespace (Namespaces), and tells the SyncReporter it was given when one
// changes.
type Sink interface {
	// Bind makes t's namespaces t's, with no credential in them yet; a
	// tenant already published is left as it is. The Kubernetes Syncer
	// marks them for the admission policy at once, so that a tenant whose
	// credential is late, or never pulls, still has its namespaces
	// guarded. The Refresher binds every tenant it syncs.
	Bind(ctx context.Context, t Tenant)
	// Publish makes p what t's pull Secrets carry in all its namespaces,
	// and keeps it there until the next Publish or Remove.
	Publish(ctx context.Context, t Tenant, p SecretPayload) error
	// Remove withdraws the tenant's Secrets everywhere.
	Remove(ctx context.Context, tenantID string) error
	// PublishedAll says every live tenant has been published: what the sink
	// holds for any other tenant may go.
	PublishedAll()
	// Report tells the tenant's workloads' owners about a credential problem
	// (a refresh that failed, with its reason) where they look: for
	// Kubernetes, an Event in each of the tenant's namespaces.
	Report(tenantID string, reason Reason, message string)
	// Namespaces returns the state of the tenant's credential in each
	// namespace the Sink holds or tried, ordered by name, for the
	// credential status.
	Namespaces(tenantID string) []NamespaceSync
}

// SyncReporter hears of a Sink's namespaces: the Sink calls it, from its
// own goroutines, when the state or reason of a tenant's namespace changes
// (the Sink keeps the states; see Sink.Namespaces). SyncConditions is the
// broker's.
type SyncReporter interface {
	// NamespaceSynced says a namespace's state for a tenant is now st.
	NamespaceSynced(ctx context.Context, tenantID string, st NamespaceSync)
}
