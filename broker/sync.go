package broker

import (
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
