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
// including namespaces that appear later.
type Sink interface {
	// Publish makes cred the tenant's credential in all its namespaces, and
	// keeps it there until the next Publish or Remove.
	Publish(ctx context.Context, t Tenant, cred Credential) error
	// Remove withdraws the tenant's Secrets everywhere.
	Remove(ctx context.Context, tenantID string) error
	// Status reports the tenant's namespaces, ordered by name.
	Status(tenantID string) []NamespaceSync
	// PublishedAll says every live tenant has been published: what the sink
	// holds for any other tenant may go.
	PublishedAll()
	// Report tells the tenant's workloads' owners about a credential problem
	// (a refresh that failed, with its reason) where they look: for
	// Kubernetes, an Event in each of the tenant's namespaces.
	Report(tenantID string, reason Reason, message string)
}
