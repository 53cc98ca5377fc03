package registryhealth

import (
	"fmt"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/kit"
)

// registryCheckEvent says a registry credential fails its health check.
func registryCheckEvent(tenantID string, c broker.RegistryCredential, err error) broker.Event {
	return broker.Event{Type: broker.EventRegistryCheckFailed, TenantID: tenantID, Registry: c.Host, Severity: broker.SeverityWarning, Reason: broker.ReasonOf(err),
		DedupeKey: registryCheckCondition(tenantID, c.Host),
		Message:   fmt.Sprintf("the credential for %s (%s, %s) fails its health check: %v; pulls from %s fail with it", c.Host, c.Username, c.Fingerprint, err, c.Host)}
}

// registryExpiryEvent warns of the nearest threshold a registry credential
// has crossed; the last threshold is critical.
func registryExpiryEvent(tenantID string, c broker.RegistryCredential, warnings []time.Duration, now time.Time) (broker.Event, bool) {
	before, last, ok := kit.CrossedWarning(c.ExpiresAt, warnings, now)
	if !ok {
		return broker.Event{}, false
	}
	return broker.Event{Type: broker.EventCredentialExpiring, TenantID: tenantID, Registry: c.Host, Severity: kit.ExpirySeverity(last),
		DedupeKey: registryExpiryCondition(tenantID, c.Host, before),
		Message: fmt.Sprintf("the credential for %s (%s, %s) expires at %s, in %s; rotate it", c.Host, c.Username, c.Fingerprint,
			c.ExpiresAt.UTC().Format(time.RFC3339), max(c.ExpiresAt.Sub(now), 0).Round(time.Minute))}, true
}

// registryCheckCondition is a registry credential that fails its health check.
func registryCheckCondition(tenantID, host string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/registries/" + host + "/check")
}

// registryExpiryCondition is a registry credential that expires within one
// warning threshold.
func registryExpiryCondition(tenantID, host string, before time.Duration) broker.ConditionKey {
	return broker.ConditionKey(fmt.Sprintf("%s/registries/%s/expiring/%s", tenantID, host, before))
}

// registryConditions are all conditions of one registry credential.
func registryConditions(tenantID, host string) broker.ConditionSet {
	return broker.ConditionSet(tenantID + "/registries/" + host + "/")
}

// minTime is the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
