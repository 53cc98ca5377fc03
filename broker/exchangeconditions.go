package broker

// pullDeniedCondition is a tenant's Pods denied again and again in one
// namespace.
func pullDeniedCondition(tenantID, namespace string) ConditionKey {
	return ConditionKey(tenantID + "/pull-denied/" + namespace)
}
