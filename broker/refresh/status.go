package refresh

import (
	"context"

	"github.com/credbroker/credbroker/broker"
)

// Status reports the credential a tenant holds as this Refresher knows it,
// its namespaces as the Sink keeps them (Sink.Namespaces), and its further
// registries as the registry checks found them.
func (r *Refresher) Status(tenantID string) broker.CredentialStatus {
	now := r.now()
	r.mu.Lock()
	status := broker.CredentialStatus{TenantID: tenantID, State: broker.CredentialPending}
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
		status.LastError != nil && broker.Permanent(status.LastError.Reason):
		status.State = broker.CredentialFailed
	case status.Fingerprint != "" && status.LastError != nil:
		status.State = broker.CredentialDegraded
	case status.Fingerprint != "":
		status.State = broker.CredentialReady
	}
	status.Namespaces = r.sink.Namespaces(tenantID)
	status.Registries = r.cfg.Registries.Status(tenantID)
	return status
}

// RenewNow renews t's credential at once (for every tenant that shares
// it), proves it for t, and returns t's status.
func (r *Refresher) RenewNow(ctx context.Context, t broker.Tenant) broker.CredentialStatus {
	r.renew(ctx, r.track(ctx, t), t.ID)
	r.waitProbes(ctx, t.ID)
	return r.Status(t.ID)
}

// Current returns the credential published for a tenant and the registries
// it was published for; ok is false when there is none.
func (r *Refresher) Current(tenantID string) (cred broker.Credential, registries []string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tenants[tenantID]
	if ts == nil || ts.published.Token == "" {
		return broker.Credential{}, nil, false
	}
	return ts.published, ts.tenant.Registries, true
}
