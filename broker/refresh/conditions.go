package refresh

import (
	"context"
	"fmt"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/kit"
)

// renewalCondition is a tenant's failing renewal (or revoked, suspended,
// deleted source).
func renewalCondition(tenantID string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/credential")
}

// expiryCondition is an App token about to expire while its renewal fails.
func expiryCondition(tenantID string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/expiring")
}

// patExpiryCondition is a PAT that expires within one warning threshold;
// each threshold is a condition of its own, so each warns once.
func patExpiryCondition(tenantID string, before time.Duration) broker.ConditionKey {
	return broker.ConditionKey(fmt.Sprintf("%s/expiring/%s", tenantID, before))
}

// probeCondition is a credential that does not pull the tenant's probe image.
func probeCondition(tenantID string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/probe")
}

// selectorCondition is a namespace selector on labels a namespace's own
// users can set, which binds no new namespace.
func selectorCondition(tenantID string) broker.ConditionKey {
	return broker.ConditionKey(tenantID + "/namespace-selector")
}

// patExpiryConditions are all of a tenant's PAT expiry warnings.
func patExpiryConditions(tenantID string) broker.ConditionSet {
	return broker.ConditionSet(tenantID + "/expiring/")
}

// The notification policy: which failure is which event, how severe, and
// when an owner is told at all.

// failureEvent names a failed renewal. A failure GitHub names (revoked,
// suspended, deleted) is an event of its own type; any failure that left
// no valid credential is critical.
func failureEvent(tenantID string, reason broker.Reason, err error, valid bool) broker.Event {
	ev := broker.Event{Type: broker.EventCredentialRefreshFailed, TenantID: tenantID, Severity: broker.SeverityWarning, Reason: reason,
		DedupeKey: renewalCondition(tenantID)}
	switch reason {
	case broker.ReasonTokenRevoked:
		ev.Type = broker.EventCredentialRevoked
	case broker.ReasonInstallationSuspended:
		ev.Type = broker.EventInstallationSuspended
	case broker.ReasonInstallationNotFound:
		ev.Type = broker.EventInstallationDeleted
	}
	if ev.Type != broker.EventCredentialRefreshFailed || !valid {
		ev.Severity = broker.SeverityCritical
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
func worthTelling(reason broker.Reason, failures int, valid bool) bool {
	return broker.Permanent(reason) || failures > 1 || !valid
}

// expiryEvent warns that an App token expires soon and renewing it fails.
func expiryEvent(tenantID string, reason broker.Reason, expiresAt time.Time) broker.Event {
	return broker.Event{Type: broker.EventCredentialExpiring, TenantID: tenantID, Severity: broker.SeverityCritical, Reason: reason,
		DedupeKey: expiryCondition(tenantID),
		Message: fmt.Sprintf("the registry credential expires at %s and renewing it keeps failing (%s); pulls fail after that",
			expiresAt.UTC().Format(time.RFC3339), reason)}
}

// probeEvent says a new credential does not pull the probe image; held is
// what the tenant keeps meanwhile.
func probeEvent(t broker.Tenant, held broker.Credential, err error) broker.Event {
	severity, kept := broker.SeverityWarning, "the credential it holds stays published"
	if held.Token == "" {
		severity, kept = broker.SeverityCritical, "nothing was published"
	}
	return broker.Event{Type: broker.EventProbeFailed, TenantID: t.ID, Severity: severity, Reason: broker.ReasonOf(err), DedupeKey: probeCondition(t.ID),
		Message: fmt.Sprintf("the new credential does not pull %s: %v; %s", t.ProbeImage, err, kept)}
}

// patExpiryEvent warns of the nearest threshold a PAT has crossed (of
// warnings, sorted longest first); ok is false when none is crossed. The
// last threshold is critical.
func patExpiryEvent(t broker.Tenant, cred broker.Credential, warnings []time.Duration, now time.Time) (_ broker.Event, ok bool) {
	before, last, ok := kit.CrossedWarning(cred.ExpiresAt, warnings, now)
	if !ok {
		return broker.Event{}, false
	}
	return broker.Event{Type: broker.EventCredentialExpiring, TenantID: t.ID, Severity: kit.ExpirySeverity(last),
		DedupeKey: patExpiryCondition(t.ID, before),
		Message: fmt.Sprintf("the tenant's PAT (%s) expires at %s, in %s; register a new one",
			cred.Fingerprint(), cred.ExpiresAt.UTC().Format(time.RFC3339), cred.ExpiresAt.Sub(now).Round(time.Minute))}, true
}

// raise notifies about a condition and, if it is news, reports it to the
// tenant's workloads through the Sink (Kubernetes Events).
func (r *Refresher) raise(ctx context.Context, ev broker.Event) {
	if r.notifier.Raise(ctx, ev) {
		r.sink.Report(ev.TenantID, ev.Reason, ev.Message)
	}
}

// checkSelector raises a condition while t's namespace selector is on
// label keys outside the platform's prefix (a tenant registered before the
// prefix existed: registration refuses such a selector now), and resolves
// it once the selector is fixed. Such a tenant keeps the namespaces it
// holds and binds no new one (NamespaceScope.Selects).
func (r *Refresher) checkSelector(ctx context.Context, t broker.Tenant) {
	scope := r.registry.Scope()
	keys := scope.UnprotectedKeys(t)
	if len(keys) == 0 {
		r.notifier.Resolve(ctx, selectorCondition(t.ID), "the namespace selector is on platform-owned labels only")
		return
	}
	r.raise(ctx, broker.Event{Type: broker.EventSelectorUnprotected, TenantID: t.ID, Severity: broker.SeverityWarning, DedupeKey: selectorCondition(t.ID),
		Message: fmt.Sprintf("namespace selector %q binds no new namespace (it keeps those it holds): %s; update the tenant's namespaceSelector",
			t.NamespaceSelector, scope.SelectorFix(keys))})
}

// renewed tells t's owners that its credential was renewed: a failing
// renewal and an expiry warning recover, and a PAT that expires soon is
// warned about (warnPATExpiry).
func (r *Refresher) renewed(ctx context.Context, t broker.Tenant, cred broker.Credential, now time.Time) {
	r.notifier.Resolve(ctx, renewalCondition(t.ID), "the credential was renewed")
	r.notifier.Resolve(ctx, expiryCondition(t.ID), "the credential was renewed")
	r.warnPATExpiry(ctx, t, cred, now)
}

// warnPATExpiry raises CREDENTIAL_EXPIRING for the nearest warning
// threshold a PAT has crossed (once per threshold), and resolves the
// warnings when the tenant's PAT no longer expires soon.
func (r *Refresher) warnPATExpiry(ctx context.Context, t broker.Tenant, cred broker.Credential, now time.Time) {
	if cred.Kind != broker.KindPAT {
		return
	}
	ev, crossed := patExpiryEvent(t, cred, r.timing.patWarnings, now)
	if !crossed {
		r.notifier.ResolveAll(ctx, patExpiryConditions(t.ID), "the tenant's PAT no longer expires soon")
		return
	}
	r.raise(ctx, ev)
}
