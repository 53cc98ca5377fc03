package refresh

import (
	"github.com/credbroker/credbroker/broker"
)

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
