package broker

import (
	"strings"
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

// DefaultPATWarnings are how long before a PAT's expiry the backend is told.
func DefaultPATWarnings() []time.Duration {
	return []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour}
}

// ConditionKey names one condition of a tenant, and is the DedupeKey of
// every event about it. Keys are made only by the constructors below, so
// that what raises a condition and what resolves it cannot drift apart. A
// key starts with its tenant's id and a slash: a tenant's conditions are
// found by that prefix.
type ConditionKey string

// ConditionSet selects conditions by key prefix.
type ConditionSet string

func (s ConditionSet) Has(key ConditionKey) bool { return strings.HasPrefix(string(key), string(s)) }

// TenantConditions are all of a tenant's conditions.
func TenantConditions(tenantID string) ConditionSet { return ConditionSet(tenantID + "/") }
