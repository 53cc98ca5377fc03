package refresh

import (
	"context"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/notify"
)

// SyncConditions turns a namespace that starts or stops failing into a
// condition: SYNC_FAILED or SYNC_CONFLICT while it fails, RECOVERED once it
// syncs. It keeps no state: the Sink keeps each namespace's, and calls it
// only on a change. A nil Notifier notifies nobody.
type SyncConditions struct {
	notifier *notify.Notifier
}

// NewSyncConditions returns the SyncReporter that tells notifier.
func NewSyncConditions(notifier *notify.Notifier) SyncConditions {
	return SyncConditions{notifier: notifier}
}

// NamespaceSynced implements broker.SyncReporter.
func (c SyncConditions) NamespaceSynced(ctx context.Context, tenantID string, st broker.NamespaceSync) {
	switch st.State {
	case broker.SyncSynced:
		c.notifier.Resolve(ctx, syncCondition(tenantID, st.Namespace), "the pull Secret in "+st.Namespace+" is in sync")
	case broker.SyncFailed, broker.SyncConflict:
		c.notifier.Raise(ctx, syncEvent(tenantID, st))
	}
}

// syncCondition is a pull Secret that cannot be written in one namespace.
func syncCondition(tenantID, namespace string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/sync/" + namespace)
}

// syncEvent turns a namespace's failing sync state into its condition.
func syncEvent(tenantID string, st broker.NamespaceSync) broker.Event {
	ev := broker.Event{Type: broker.EventSyncFailed, TenantID: tenantID, Namespace: st.Namespace, Severity: broker.SeverityWarning,
		Reason: st.Reason, Message: st.Message, DedupeKey: syncCondition(tenantID, st.Namespace)}
	if st.State == broker.SyncConflict {
		ev.Type = broker.EventSyncConflict
	}
	return ev
}
