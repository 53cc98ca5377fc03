package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// The credential-key table: which credential each tenant needs, and which
// tenants each credential serves. Tenants with equal keys share one
// credential, so one renewal serves them all.

// tenantState is what the Refresher knows of a tenant.
type tenantState struct {
	tenant broker.Tenant // as last read from Tenants
	key    string
	// published is what the Sink holds for the tenant, and publishedOwner
	// the owner it was proved for: a credential of another kind or owner
	// must pass the probe again.
	published      broker.Credential
	publishedOwner int64
	probe          *broker.ProbeResult // the last probe, if any
	probeAt        time.Time           // when a failed probe is tried again
	probeWanted    bool                // RenewNow asked for a probe of the next delivery
	// probeNext is the delivery waiting for a probe; probeDone is closed
	// when the tenant's probes in flight are through (nil when none are).
	probeNext *probeJob
	probeDone chan struct{}
}

// keyState is one credential and the tenants it serves.
type keyState struct {
	cred        broker.Credential
	due         time.Time
	lastRefresh time.Time
	lastErr     *broker.CredentialError
	failures    int // consecutive
	tenants     map[string]bool
}

// credentialKey names the credential a tenant needs: tenants with equal keys
// can share one. A PAT is its tenant's own (its fingerprint is in the key,
// so a new PAT is a new credential).
func credentialKey(t broker.Tenant) string {
	switch {
	case t.App != nil:
		perms := make([]string, 0, len(t.App.Permissions))
		for name, level := range t.App.Permissions {
			perms = append(perms, name+"="+level)
		}
		slices.Sort(perms)
		repos := slices.Sorted(slices.Values(t.App.Repositories))
		return fmt.Sprintf("app/%d/%s/%s", t.App.InstallationID, strings.Join(perms, ","), strings.Join(repos, ","))
	case t.PAT != nil:
		return "pat/" + t.ID + "/" + t.PAT.Fingerprint
	}
	return "none/" + t.ID
}

func kindOf(t broker.Tenant) broker.CredentialKind {
	if t.PAT != nil {
		return broker.KindPAT
	}
	return broker.KindGitHubApp
}

// track records t under its credential key, moving it off an old key. A
// key seen for the first time starts from its stored credential, if one is
// stored and still good.
func (r *Refresher) track(ctx context.Context, t broker.Tenant) string {
	key := credentialKey(t)
	r.mu.Lock()
	ts := r.tenants[t.ID]
	var dropped string
	var droppedCred broker.Credential
	if ts != nil && ts.key != key {
		dropped, droppedCred = r.untrackLocked(t.ID, ts.key)
	}
	if ts == nil {
		ts = &tenantState{}
		r.tenants[t.ID] = ts
	}
	ts.tenant, ts.key = t, key
	ks := r.keys[key]
	isNew := ks == nil
	if isNew {
		ks = &keyState{tenants: map[string]bool{}}
		r.keys[key] = ks
	}
	ks.tenants[t.ID] = true
	r.mu.Unlock()
	r.dropKey(ctx, dropped, droppedCred)
	if isNew {
		r.loadStored(ctx, key)
	}
	return key
}

// untrackLocked takes a tenant off a key and returns the key if no tenant
// is left on it, with the credential it held.
func (r *Refresher) untrackLocked(id, key string) (string, broker.Credential) {
	ks := r.keys[key]
	if ks == nil {
		return "", broker.Credential{}
	}
	delete(ks.tenants, id)
	if len(ks.tenants) > 0 {
		return "", broker.Credential{}
	}
	delete(r.keys, key)
	return key, ks.cred
}

// dropKey forgets a key no tenant uses: its stored credential goes, and its
// token is retired.
func (r *Refresher) dropKey(ctx context.Context, key string, cred broker.Credential) {
	if key == "" {
		return
	}
	r.forgetStored(ctx, key)
	r.retire(cred, r.now())
}

// remove withdraws a deleted tenant's credential and forgets the tenant.
func (r *Refresher) remove(ctx context.Context, id string) {
	if err := r.sink.Remove(ctx, id); err != nil {
		r.log.WarnContext(ctx, "remove tenant", slog.String("tenant", id), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	var dropped string
	var droppedCred broker.Credential
	if ts := r.tenants[id]; ts != nil {
		dropped, droppedCred = r.untrackLocked(id, ts.key)
		delete(r.tenants, id)
	}
	r.mu.Unlock()
	r.dropKey(ctx, dropped, droppedCred)
	if err := r.cfg.Publications.Remove(ctx, id); err != nil {
		r.log.WarnContext(ctx, "remove the publication of a removed tenant", slog.String("tenant", id), slog.Any("error", err))
	}
	r.cfg.Metrics.Forget(id)
	// A tenant registered again under this id starts without old conditions.
	r.notifier.ResolveAll(ctx, broker.TenantConditions(id), "tenant "+id+" was removed")
}

// tenantsLocked returns the tenants a key serves, ordered by id.
func (r *Refresher) tenantsLocked(ks *keyState) []broker.Tenant {
	tenants := make([]broker.Tenant, 0, len(ks.tenants))
	for id := range ks.tenants {
		tenants = append(tenants, r.tenants[id].tenant)
	}
	slices.SortFunc(tenants, func(a, b broker.Tenant) int { return strings.Compare(a.ID, b.ID) })
	return tenants
}
