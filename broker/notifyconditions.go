package broker

import "strings"

// ConditionKey names one condition of a tenant, and is the DedupeKey of
// every event about it. Keys are made only by the constructors below, so
// that what raises a condition and what resolves it cannot drift apart. A
// key starts with its tenant's id and a slash: a tenant's conditions are
// found by that prefix.
type ConditionKey string

// conditionSet selects conditions by key prefix.
type conditionSet string

func (s conditionSet) has(key ConditionKey) bool { return strings.HasPrefix(string(key), string(s)) }

// tenantConditions are all of a tenant's conditions.
func tenantConditions(tenantID string) conditionSet { return conditionSet(tenantID + "/") }
