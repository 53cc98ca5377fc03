package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// Minting: renew is the one verb that obtains a credential from the
// Source; syncTenant brings one tenant up to date, renewing only when the
// credential it shares is missing or due.

// syncTenantID brings the tenant with this id up to date, or removes it
// when it is gone.
func (r *Refresher) syncTenantID(ctx context.Context, id string) {
	t, err := r.registry.Get(ctx, id)
	if err != nil {
		r.remove(ctx, id)
		return
	}
	r.syncTenant(ctx, t)
}

// syncTenant brings one tenant up to date: a tenant whose credential is
// shared and still good gets that credential without a mint; otherwise its
// key is renewed.
func (r *Refresher) syncTenant(ctx context.Context, t broker.Tenant) {
	r.checkSelector(ctx, t)
	r.sink.Bind(ctx, t)
	key := r.track(ctx, t)
	r.mu.Lock()
	ks := r.keys[key]
	cred, fresh := ks.cred, ks.cred.Token != "" && r.now().Before(ks.due)
	r.mu.Unlock()
	if fresh {
		r.deliver(ctx, t, cred, false)
		return
	}
	r.renew(ctx, key, "")
}

// renew obtains a new credential for key and delivers it to every tenant of
// the key; probeTenant, if set, is probed even if its credential's kind and
// owner did not change. Concurrent renewals of one key share one call to
// the Source. On failure the last good credential stays published.
//
// The renewal is the key's, not the caller's: it runs on the Refresher's
// own context (with a deadline of its own), so a caller that goes away — a
// RefreshCredential client, a webhook delivery — cuts short nobody's
// renewal. Each caller waits on its own context.
func (r *Refresher) renew(ctx context.Context, key, probeTenant string) {
	if probeTenant != "" {
		r.mu.Lock()
		if ts := r.tenants[probeTenant]; ts != nil {
			ts.probeWanted = true
		}
		r.mu.Unlock()
	}
	done := r.flight.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(r.detached(ctx), r.cfg.RenewTimeout)
		defer cancel()
		if renewed, ok := r.renewKey(rctx, key); ok {
			r.handOut(rctx, renewed)
		}
		return nil, nil
	})
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// renewal is what one renewal of a key produced: the new credential, the
// one it replaces, and the tenants that share it.
type renewal struct {
	key       string
	cred, old broker.Credential
	tenants   []broker.Tenant
	renewedAt time.Time
}

// renewKey is one renewal of key: obtain a credential from the Source and
// record it as the key's. A failure is recorded instead (fail), and the
// last good credential stays. What the new credential sets off is
// handOut's.
func (r *Refresher) renewKey(ctx context.Context, key string) (renewal, bool) {
	source, ok := r.sourceOf(key)
	if !ok {
		return renewal{}, false
	}
	cred, err := r.obtain(ctx, source)
	r.cfg.Metrics.Refreshed(kindOf(source), err)
	if err != nil {
		r.fail(ctx, key, err)
		return renewal{}, false
	}
	return r.record(key, cred)
}

// sourceOf is any tenant of key: they share the source.
func (r *Refresher) sourceOf(key string) (broker.Tenant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ks := r.keys[key]; ks != nil {
		for id := range ks.tenants {
			return r.tenants[id].tenant, true
		}
	}
	return broker.Tenant{}, false
}

// record makes cred key's credential, due again by its expiry, unless
// every tenant of the key went meanwhile.
func (r *Refresher) record(key string, cred broker.Credential) (renewal, bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	ks := r.keys[key]
	if ks == nil {
		return renewal{}, false
	}
	old := ks.cred
	ks.cred, ks.lastRefresh, ks.lastErr, ks.failures = cred, now, nil, 0
	ks.due = r.timing.due(cred, now)
	return renewal{key: key, cred: cred, old: old, tenants: r.tenantsLocked(ks), renewedAt: now}, true
}

// handOut is what a renewed credential sets off, in order: the one it
// replaces is retired (revoked later), the new one is stored to survive a
// restart, each tenant's owners hear that the renewal recovered, and each
// tenant gets it (probed first where the kind or owner changed).
func (r *Refresher) handOut(ctx context.Context, rn renewal) {
	if rn.old.Token != rn.cred.Token {
		r.retire(rn.old, rn.renewedAt)
	}
	r.store(ctx, rn.key, rn.cred, rn.renewedAt)
	for _, t := range rn.tenants {
		r.renewed(ctx, t, rn.cred, rn.renewedAt)
		r.deliver(ctx, t, rn.cred, false)
	}
}

// obtain asks the Source for t's credential: a fresh installation token,
// or the tenant's PAT once GitHub vouched for it.
func (r *Refresher) obtain(ctx context.Context, t broker.Tenant) (broker.Credential, error) {
	switch {
	case t.App != nil:
		return guarded(ctx, r.log, "minting an installation token", func() (broker.Credential, error) {
			return r.source.MintInstallationToken(ctx, t.App.InstallationID, t.App.Permissions, t.App.Repositories)
		})
	case t.PAT != nil:
		token, err := r.registry.Secrets().PAT(t)
		if err != nil {
			return broker.Credential{}, err
		}
		owner, err := guarded(ctx, r.log, "validating a PAT", func() (broker.PATOwner, error) { return r.source.ValidatePAT(ctx, token) })
		if err != nil {
			return broker.Credential{}, err
		}
		return broker.Credential{Kind: broker.KindPAT, Username: owner.Owner.Login, Token: token, IssuedAt: r.now(), ExpiresAt: owner.ExpiresAt}, nil
	}
	return broker.Credential{}, fmt.Errorf("tenant %q has no credential source", t.ID)
}

// fail records a failed renewal of key: the last good credential stays
// published, the key is tried again after a backoff, and the tenants'
// owners are told.
func (r *Refresher) fail(ctx context.Context, key string, err error) {
	now := r.now()
	reason := broker.ReasonOf(err)
	r.mu.Lock()
	ks := r.keys[key]
	if ks == nil {
		r.mu.Unlock()
		return
	}
	ks.failures++
	ks.lastRefresh = now
	ks.lastErr = &broker.CredentialError{Reason: reason, Message: err.Error(), Time: now}
	wait := r.timing.retryWait(ks.cred, ks.failures, err, now)
	ks.due = now.Add(wait)
	cred, failures := ks.cred, ks.failures
	tenants := r.tenantsLocked(ks)
	r.mu.Unlock()

	valid := cred.Token != "" && (cred.ExpiresAt.IsZero() || now.Before(cred.ExpiresAt))
	for _, t := range tenants {
		r.log.WarnContext(ctx, "refresh failed", slog.String("tenant", t.ID), slog.String("reason", string(reason)),
			slog.Any("error", err), slog.Duration("retryIn", wait), slog.Int("failures", failures))
		if worthTelling(reason, failures, valid) {
			r.raise(ctx, failureEvent(t.ID, reason, err, valid))
		}
		if cred.Kind == broker.KindGitHubApp && valid && !now.Before(r.timing.expiryWarning(cred)) {
			r.raise(ctx, expiryEvent(t.ID, reason, cred.ExpiresAt))
		}
	}
}
