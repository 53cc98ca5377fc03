package broker

import (
	"context"
	"time"
)

// CredentialState summarises whether a tenant can pull right now.
type CredentialState string

// Credential states.
const (
	CredentialPending  CredentialState = "PENDING"  // nothing obtained yet
	CredentialReady    CredentialState = "READY"    // a valid credential is published
	CredentialDegraded CredentialState = "DEGRADED" // published and valid, but refreshing or proving it fails
	CredentialFailed   CredentialState = "FAILED"   // nothing valid published, or a failure only a person can fix
)

// CredentialError is the last failure to obtain, prove or publish a credential.
type CredentialError struct {
	Reason  Reason
	Message string
	Time    time.Time
}

// CredentialStatus describes a tenant's credential without revealing it.
type CredentialStatus struct {
	TenantID    string
	Kind        CredentialKind
	State       CredentialState
	Fingerprint string
	Username    string
	ExpiresAt   time.Time
	LastRefresh time.Time
	NextRefresh time.Time
	LastError   *CredentialError
	Probe       *ProbeResult
	Namespaces  []NamespaceSync
	// Registries are the tenant's further registry credentials, as their
	// health checks found them.
	Registries []RegistryStatus
}

// Status reports the credential a tenant holds as this Refresher knows it,
// and its namespaces as the Sink holds them.
func (r *Refresher) Status(tenantID string) CredentialStatus {
	now := r.now()
	r.mu.Lock()
	status := CredentialStatus{TenantID: tenantID, State: CredentialPending}
	if ts := r.tenants[tenantID]; ts != nil {
		if ks := r.keys[ts.key]; ks != nil {
			status.LastRefresh, status.NextRefresh, status.LastError = ks.lastRefresh, ks.due, ks.lastErr
		}
		if ts.probe != nil && !ts.probe.Pulls {
			status.LastError = ts.probe.Error
		}
		status.Probe = ts.probe
		if c := ts.published; c.Token != "" {
			status.Kind, status.Fingerprint, status.Username, status.ExpiresAt = c.Kind, c.Fingerprint(), c.Username, c.ExpiresAt
		}
	}
	r.mu.Unlock()
	expired := !status.ExpiresAt.IsZero() && !now.Before(status.ExpiresAt)
	switch {
	case status.Fingerprint == "" && status.LastError != nil, status.Fingerprint != "" && expired,
		status.LastError != nil && permanent(status.LastError.Reason):
		status.State = CredentialFailed
	case status.Fingerprint != "" && status.LastError != nil:
		status.State = CredentialDegraded
	case status.Fingerprint != "":
		status.State = CredentialReady
	}
	status.Namespaces = r.sink.Namespaces(tenantID)
	status.Registries = r.cfg.Registries.Status(tenantID)
	return status
}

// RenewNow renews t's credential at once (for every tenant that shares
// it), proves it for t, and returns t's status.
func (r *Refresher) RenewNow(ctx context.Context, t Tenant) CredentialStatus {
	r.renew(ctx, r.track(ctx, t), t.ID)
	r.waitProbes(ctx, t.ID)
	return r.Status(t.ID)
}

// Current returns the credential published for a tenant and the registries
// it was published for; ok is false when there is none.
func (r *Refresher) Current(tenantID string) (cred Credential, registries []string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tenants[tenantID]
	if ts == nil || ts.published.Token == "" {
		return Credential{}, nil, false
	}
	return ts.published, ts.tenant.Registries, true
}
