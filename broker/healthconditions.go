package broker

import (
	"fmt"
	"time"
)

// registryCheckEvent says a registry credential fails its health check.
func registryCheckEvent(tenantID string, c RegistryCredential, err error) Event {
	return Event{Type: EventRegistryCheckFailed, TenantID: tenantID, Registry: c.Host, Severity: SeverityWarning, Reason: ReasonOf(err),
		DedupeKey: registryCheckCondition(tenantID, c.Host),
		Message:   fmt.Sprintf("the credential for %s (%s, %s) fails its health check: %v; pulls from %s fail with it", c.Host, c.Username, c.Fingerprint, err, c.Host)}
}

// registryExpiryEvent warns of the nearest threshold a registry credential
// has crossed; the last threshold is critical.
func registryExpiryEvent(tenantID string, c RegistryCredential, warnings []time.Duration, now time.Time) (Event, bool) {
	before, last, ok := crossedWarning(c.ExpiresAt, warnings, now)
	if !ok {
		return Event{}, false
	}
	return Event{Type: EventCredentialExpiring, TenantID: tenantID, Registry: c.Host, Severity: expirySeverity(last),
		DedupeKey: registryExpiryCondition(tenantID, c.Host, before),
		Message: fmt.Sprintf("the credential for %s (%s, %s) expires at %s, in %s; rotate it", c.Host, c.Username, c.Fingerprint,
			c.ExpiresAt.UTC().Format(time.RFC3339), max(c.ExpiresAt.Sub(now), 0).Round(time.Minute))}, true
}

// registryCheckCondition is a registry credential that fails its health check.
func registryCheckCondition(tenantID, host string) ConditionKey {
	return ConditionKey(tenantID + "/registries/" + host + "/check")
}

// registryExpiryCondition is a registry credential that expires within one
// warning threshold.
func registryExpiryCondition(tenantID, host string, before time.Duration) ConditionKey {
	return ConditionKey(fmt.Sprintf("%s/registries/%s/expiring/%s", tenantID, host, before))
}

// registryConditions are all conditions of one registry credential.
func registryConditions(tenantID, host string) conditionSet {
	return conditionSet(tenantID + "/registries/" + host + "/")
}
