package broker

import "context"

// Store keeps tenants. Implementations set Tenant.Version on every write and
// make UpdateTenant and DeleteTenant conditional on it.
type Store interface {
	// GetTenant returns ErrNotFound when there is no such tenant.
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// ListTenants returns up to limit tenants with ids greater than afterID,
	// ordered by id.
	ListTenants(ctx context.Context, afterID string, limit int) ([]Tenant, error)
	// CreateTenant returns ErrAlreadyExists when the id is taken.
	CreateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// UpdateTenant writes t if the stored version still equals t.Version,
	// else returns ErrConflict.
	UpdateTenant(ctx context.Context, t Tenant) (Tenant, error)
	// DeleteTenant deletes the tenant if version is empty or matches.
	DeleteTenant(ctx context.Context, id, version string) error
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
// (the Sink keeps the states; see Sink.Namespaces). refresh.SyncConditions
// is the one the leader wires.
type SyncReporter interface {
	// NamespaceSynced says a namespace's state for a tenant is now st.
	NamespaceSynced(ctx context.Context, tenantID string, st NamespaceSync)
}

// Revoker retires an installation token at GitHub before it expires.
type Revoker interface {
	RevokeInstallationToken(ctx context.Context, token string) error
}

// RegistryChecker asks a registry whether a credential works, the way a
// pull client would: a login, or a login and a manifest HEAD of an image.
type RegistryChecker interface {
	Login(ctx context.Context, cred Credential, host string) error
	Probe(ctx context.Context, cred Credential, image string) error
}

// EventReporter tells a tenant's workloads' owners about a problem where
// they look; the Sink is one (Kubernetes Events).
type EventReporter interface {
	Report(tenantID string, reason Reason, message string)
}

// GitHub answers who a credential belongs to. Tenants asks it before
// accepting a tenant, so that nobody registers someone else's installation
// or a PAT that cannot pull.
type GitHub interface {
	Installation(ctx context.Context, id int64) (Installation, error)
	ValidatePAT(ctx context.Context, token string) (PATOwner, error)
}

// TenantCache is a read-only copy of the store kept current by a watch.
type TenantCache interface {
	// CachedTenant returns the tenant with id; ok is false when the cache
	// cannot say (not synced yet), and err is ErrNotFound when it has none.
	CachedTenant(id string) (t Tenant, ok bool, err error)
}

// Source obtains credentials from GitHub.
type Source interface {
	MintInstallationToken(ctx context.Context, installationID int64, permissions map[string]string, repositories []string) (Credential, error)
	ValidatePAT(ctx context.Context, token string) (PATOwner, error)
}

// PublicationStore keeps, where every replica reads it, the credential each
// tenant holds now: the leader writes, and any replica's credential
// provider exchange reads from memory (a cache the store keeps current),
// since it answers at every image pull.
type PublicationStore interface {
	// PutPublication stores the sealed publication of a tenant.
	PutPublication(ctx context.Context, tenantID, fingerprint string, sealed []byte) error
	// DeletePublication removes it; nil when there was none.
	DeletePublication(ctx context.Context, tenantID string) error
	// Publication returns a tenant's stored publication from memory.
	Publication(tenantID string) (fingerprint string, sealed []byte, ok bool)
	// PublishedTenants lists the tenants with a publication, from memory.
	PublishedTenants() []string
	// Synced reports whether the memory has been filled.
	Synced() bool
}

// Prober proves that a credential pulls an image, or says why it does not.
type Prober interface {
	Probe(ctx context.Context, cred Credential, image string) error
}

// NamespaceOwners says which tenant holds a namespace. It answers from
// memory: it is asked at every pull.
type NamespaceOwners interface {
	// NamespaceOwner returns the tenant holding namespace, ok false when
	// none does, or an error when it cannot tell (not synced yet).
	NamespaceOwner(namespace string) (t Tenant, ok bool, err error)
}

// DenialReporter shows a denial where the Pod's owner looks: the Pod's
// Events (the kubelet shows only the registry's 401).
type DenialReporter interface {
	PullDenied(pod PodIdentity, image string, d *DeniedError)
}

// EventStore keeps the event log and the webhook outbox. An event and its
// place in the outbox are written together, so that a crash between the two
// cannot lose a delivery.
type EventStore interface {
	// AppendEvent stores ev, and when deliver is set also queues it for the
	// webhook, in one write. Stores may drop their oldest delivered events
	// to bound the log.
	AppendEvent(ctx context.Context, ev Event, deliver bool) error
	// EventsAfter returns up to limit events with IDs greater than afterID
	// (all when afterID is empty), oldest first.
	EventsAfter(ctx context.Context, afterID string, limit int) ([]Event, error)
	// EventsBefore returns up to limit events with IDs less than beforeID
	// (the newest when beforeID is empty), newest first.
	EventsBefore(ctx context.Context, beforeID string, limit int) ([]Event, error)
	// PendingEvents returns up to limit events queued for the webhook,
	// oldest first.
	PendingEvents(ctx context.Context, limit int) ([]Event, error)
	// MarkDelivered takes an event off the webhook queue.
	MarkDelivered(ctx context.Context, id string) error
}

// CredentialStore keeps the current credential of each credential key,
// sealed, so that a restarted broker (or a new leader) publishes a
// still-valid credential without asking GitHub for another.
type CredentialStore interface {
	// GetCredential returns ErrNotFound when nothing is stored for key.
	GetCredential(ctx context.Context, key string) ([]byte, error)
	PutCredential(ctx context.Context, key string, sealed []byte) error
	DeleteCredential(ctx context.Context, key string) error
}

// Inbox keeps GitHub deliveries from their arrival, on whichever replica
// received them, until the leader has acted on them. It remembers the keys
// (Delivery.Key) of recent deliveries, so that one redelivered or
// replayed, under its own id or another, is acted on once.
type Inbox interface {
	// AddDelivery stores d; added is false when a delivery with d.Key() is
	// known already (d is then not stored again).
	AddDelivery(ctx context.Context, d Delivery) (added bool, err error)
	// PendingDeliveries returns up to limit deliveries not yet finished,
	// oldest first.
	PendingDeliveries(ctx context.Context, limit int) ([]Delivery, error)
	// FinishDelivery marks the delivery with Key key acted on. The key is
	// remembered for a bounded number of deliveries after it.
	FinishDelivery(ctx context.Context, key string) error
}

// Namespaces lists the cluster's namespaces with their labels, so that a
// registration can see what a selector matches now.
type Namespaces interface {
	ListNamespaces(ctx context.Context) (map[string]map[string]string, error)
}

// AuditStore keeps the audit trail, bounded to its newest records.
type AuditStore interface {
	AppendAudit(ctx context.Context, rec AuditRecord) error
	// AuditRecords returns up to limit records, newest first.
	AuditRecords(ctx context.Context, limit int) ([]AuditRecord, error)
}
