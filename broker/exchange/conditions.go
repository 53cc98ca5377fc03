package exchange

import "github.com/credbroker/credbroker/broker"

// pullDeniedCondition is a tenant's Pods denied again and again in one
// namespace.
func pullDeniedCondition(tenantID, namespace string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/pull-denied/" + namespace)
}
