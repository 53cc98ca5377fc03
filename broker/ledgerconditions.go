package broker

// syncCondition is a pull Secret that cannot be written in one namespace.
func syncCondition(tenantID, namespace string) ConditionKey {
	return ConditionKey(tenantID + "/sync/" + namespace)
}

// syncEvent turns a namespace's failing sync state into its condition.
func syncEvent(tenantID string, st NamespaceSync) Event {
	ev := Event{Type: EventSyncFailed, TenantID: tenantID, Namespace: st.Namespace, Severity: SeverityWarning,
		Reason: st.Reason, Message: st.Message, DedupeKey: syncCondition(tenantID, st.Namespace)}
	if st.State == SyncConflict {
		ev.Type = EventSyncConflict
	}
	return ev
}
