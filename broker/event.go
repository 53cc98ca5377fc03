package broker

import (
	"context"
	"time"
)

// EventType is the stable name of a condition the backend is told about.
// The values are the API's EventType names without the EVENT_TYPE_ prefix.
type EventType string

// Event types.
const (
	EventCredentialExpiring      EventType = "CREDENTIAL_EXPIRING"
	EventCredentialRefreshFailed EventType = "CREDENTIAL_REFRESH_FAILED"
	EventCredentialRevoked       EventType = "CREDENTIAL_REVOKED"
	EventInstallationSuspended   EventType = "INSTALLATION_SUSPENDED"
	EventInstallationDeleted     EventType = "INSTALLATION_DELETED"
	EventProbeFailed             EventType = "PROBE_FAILED"
	EventSyncFailed              EventType = "SYNC_FAILED"
	EventSyncConflict            EventType = "SYNC_CONFLICT"
	EventRecovered               EventType = "RECOVERED"
	EventWebhookUndelivered      EventType = "WEBHOOK_UNDELIVERED"
	EventPullDenied              EventType = "PULL_DENIED"
	EventRegistryCheckFailed     EventType = "REGISTRY_CHECK_FAILED"
	// EventSelectorUnprotected is a tenant's namespace selector on labels
	// outside the platform's prefix: it binds no new namespace.
	EventSelectorUnprotected EventType = "NAMESPACE_SELECTOR_UNPROTECTED"
)

// Severity ranks events for alerting.
type Severity string

// Severities.
const (
	SeverityInfo     Severity = "INFO"
	SeverityWarning  Severity = "WARNING"
	SeverityCritical Severity = "CRITICAL"
)

// Event is one notification. Every event about one condition carries the
// same DedupeKey: the condition is raised once, raised again only when its
// type or reason changes, and closed by one RECOVERED event.
type Event struct {
	// ID is assigned by the Notifier; IDs sort in the order events happened.
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	TenantID  string    `json:"tenantID"`
	Namespace string    `json:"namespace,omitempty"`
	// Registry is the host of the registry credential the event is about,
	// for events about a tenant's further registries.
	Registry  string       `json:"registry,omitempty"`
	Severity  Severity     `json:"severity"`
	Reason    Reason       `json:"reason,omitempty"`
	Message   string       `json:"message"`
	DedupeKey ConditionKey `json:"dedupeKey"`
	Time      time.Time    `json:"time"`
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
