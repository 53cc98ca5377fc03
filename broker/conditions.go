package broker

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ConditionKey names one condition of a tenant, and is the DedupeKey of
// every event about it. Keys are made only by the constructors below, so
// that what raises a condition and what resolves it cannot drift apart. A
// key starts with its tenant's id and a slash: a tenant's conditions are
// found by that prefix.
type ConditionKey string

// renewalCondition is a tenant's failing renewal (or revoked, suspended,
// deleted source).
func renewalCondition(tenantID string) ConditionKey { return ConditionKey(tenantID + "/credential") }

// expiryCondition is an App token about to expire while its renewal fails.
func expiryCondition(tenantID string) ConditionKey { return ConditionKey(tenantID + "/expiring") }

// patExpiryCondition is a PAT that expires within one warning threshold;
// each threshold is a condition of its own, so each warns once.
func patExpiryCondition(tenantID string, before time.Duration) ConditionKey {
	return ConditionKey(fmt.Sprintf("%s/expiring/%s", tenantID, before))
}

// probeCondition is a credential that does not pull the tenant's probe image.
func probeCondition(tenantID string) ConditionKey { return ConditionKey(tenantID + "/probe") }

// syncCondition is a pull Secret that cannot be written in one namespace.
func syncCondition(tenantID, namespace string) ConditionKey {
	return ConditionKey(tenantID + "/sync/" + namespace)
}

// selectorCondition is a namespace selector on labels a namespace's own
// users can set, which binds no new namespace.
func selectorCondition(tenantID string) ConditionKey {
	return ConditionKey(tenantID + "/namespace-selector")
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

// conditionSet selects conditions by key prefix.
type conditionSet string

func (s conditionSet) has(key ConditionKey) bool { return strings.HasPrefix(string(key), string(s)) }

// tenantConditions are all of a tenant's conditions.
func tenantConditions(tenantID string) conditionSet { return conditionSet(tenantID + "/") }

// patExpiryConditions are all of a tenant's PAT expiry warnings.
func patExpiryConditions(tenantID string) conditionSet { return conditionSet(tenantID + "/expiring/") }

// registryConditions are all conditions of one registry credential.
func registryConditions(tenantID, host string) conditionSet {
	return conditionSet(tenantID + "/registries/" + host + "/")
}

// The notification policy: which failure is which event, how severe, and
// when an owner is told at all.

// failureEvent names a failed renewal. A failure GitHub names (revoked,
// suspended, deleted) is an event of its own type; any failure that left
// no valid credential is critical.
func failureEvent(tenantID string, reason Reason, err error, valid bool) Event {
	ev := Event{Type: EventCredentialRefreshFailed, TenantID: tenantID, Severity: SeverityWarning, Reason: reason,
		DedupeKey: renewalCondition(tenantID)}
	switch reason {
	case ReasonTokenRevoked:
		ev.Type = EventCredentialRevoked
	case ReasonInstallationSuspended:
		ev.Type = EventInstallationSuspended
	case ReasonInstallationNotFound:
		ev.Type = EventInstallationDeleted
	}
	if ev.Type != EventCredentialRefreshFailed || !valid {
		ev.Severity = SeverityCritical
	}
	if valid {
		ev.Message = fmt.Sprintf("refreshing the registry credential failed: %v; the last good credential stays until it expires", err)
	} else {
		ev.Message = fmt.Sprintf("no valid registry credential: %v", err)
	}
	return ev
}

// worthTelling reports whether a failed renewal is news: one transient
// failure, retried within seconds, is not; a second one, one only a person
// can fix, or one that left no valid credential is.
func worthTelling(reason Reason, failures int, valid bool) bool {
	return permanent(reason) || failures > 1 || !valid
}

// expiryEvent warns that an App token expires soon and renewing it fails.
func expiryEvent(tenantID string, reason Reason, expiresAt time.Time) Event {
	return Event{Type: EventCredentialExpiring, TenantID: tenantID, Severity: SeverityCritical, Reason: reason,
		DedupeKey: expiryCondition(tenantID),
		Message: fmt.Sprintf("the registry credential expires at %s and renewing it keeps failing (%s); pulls fail after that",
			expiresAt.UTC().Format(time.RFC3339), reason)}
}

// probeEvent says a new credential does not pull the probe image; held is
// what the tenant keeps meanwhile.
func probeEvent(t Tenant, held Credential, err error) Event {
	severity, kept := SeverityWarning, "the credential it holds stays published"
	if held.Token == "" {
		severity, kept = SeverityCritical, "nothing was published"
	}
	return Event{Type: EventProbeFailed, TenantID: t.ID, Severity: severity, Reason: ReasonOf(err), DedupeKey: probeCondition(t.ID),
		Message: fmt.Sprintf("the new credential does not pull %s: %v; %s", t.ProbeImage, err, kept)}
}

// patExpiryEvent warns of the nearest threshold a PAT has crossed (of
// warnings, sorted longest first); ok is false when none is crossed. The
// last threshold is critical.
func patExpiryEvent(t Tenant, cred Credential, warnings []time.Duration, now time.Time) (_ Event, ok bool) {
	before, last, ok := crossedWarning(cred.ExpiresAt, warnings, now)
	if !ok {
		return Event{}, false
	}
	return Event{Type: EventCredentialExpiring, TenantID: t.ID, Severity: expirySeverity(last),
		DedupeKey: patExpiryCondition(t.ID, before),
		Message: fmt.Sprintf("the tenant's PAT (%s) expires at %s, in %s; register a new one",
			cred.Fingerprint(), cred.ExpiresAt.UTC().Format(time.RFC3339), cred.ExpiresAt.Sub(now).Round(time.Minute))}, true
}

// expirySeverity is a warning's, critical at the last threshold.
func expirySeverity(last bool) Severity {
	if last {
		return SeverityCritical
	}
	return SeverityWarning
}

// crossedWarning is the nearest threshold (of warnings, sorted longest
// first) before expiresAt that now has passed, and whether it is the last;
// ok is false when none has, or nothing expires.
func crossedWarning(expiresAt time.Time, warnings []time.Duration, now time.Time) (before time.Duration, last, ok bool) {
	if expiresAt.IsZero() {
		return 0, false, false
	}
	left := expiresAt.Sub(now)
	crossed := -1
	for i, before := range warnings {
		if left <= before {
			crossed = i
		}
	}
	if crossed < 0 {
		return 0, false, false
	}
	return warnings[crossed], crossed == len(warnings)-1, true
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

// SyncConditions turns a namespace that starts or stops failing into a
// condition: SYNC_FAILED or SYNC_CONFLICT while it fails, RECOVERED once it
// syncs. A nil Notifier notifies nobody.
type SyncConditions struct {
	notifier *Notifier
}

// NewSyncConditions returns the SyncReporter that tells notifier.
func NewSyncConditions(notifier *Notifier) SyncConditions {
	return SyncConditions{notifier: notifier}
}

// NamespaceSynced implements SyncReporter.
func (c SyncConditions) NamespaceSynced(ctx context.Context, tenantID string, st NamespaceSync) {
	switch st.State {
	case SyncSynced:
		c.notifier.Resolve(ctx, syncCondition(tenantID, st.Namespace), "the pull Secret in "+st.Namespace+" is in sync")
	case SyncFailed, SyncConflict:
		c.notifier.Raise(ctx, syncEvent(tenantID, st))
	}
}

// raise notifies about a condition and, if it is news, reports it to the
// tenant's workloads through the Sink (Kubernetes Events).
func (r *Refresher) raise(ctx context.Context, ev Event) {
	if r.notifier.Raise(ctx, ev) {
		r.sink.Report(ev.TenantID, ev.Reason, ev.Message)
	}
}

// checkSelector raises a condition while t's namespace selector is on
// label keys outside the platform's prefix (a tenant registered before the
// prefix existed: registration refuses such a selector now), and resolves
// it once the selector is fixed. Such a tenant keeps the namespaces it
// holds and binds no new one (NamespaceScope.Selects).
func (r *Refresher) checkSelector(ctx context.Context, t Tenant) {
	scope := r.registry.Scope()
	keys := scope.UnprotectedKeys(t)
	if len(keys) == 0 {
		r.notifier.Resolve(ctx, selectorCondition(t.ID), "the namespace selector is on platform-owned labels only")
		return
	}
	r.raise(ctx, Event{Type: EventSelectorUnprotected, TenantID: t.ID, Severity: SeverityWarning, DedupeKey: selectorCondition(t.ID),
		Message: fmt.Sprintf("namespace selector %q binds no new namespace (it keeps those it holds): %s; update the tenant's namespaceSelector",
			t.NamespaceSelector, scope.selectorFix(keys))})
}
