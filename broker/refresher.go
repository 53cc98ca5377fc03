package broker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Source obtains credentials from GitHub.
type Source interface {
	MintInstallationToken(ctx context.Context, installationID int64, permissions map[string]string, repositories []string) (Credential, error)
	ValidatePAT(ctx context.Context, token string) (PATOwner, error)
}

// RefresherConfig tunes a Refresher.
type RefresherConfig struct {
	// Lead is how long before expiry a credential is renewed; 15m when zero.
	Lead time.Duration
	// PATRecheck is how often a PAT without expiry is validated again; 6h
	// when zero.
	PATRecheck time.Duration
	// Resync is how often the tenant list is read again, to see tenants
	// that other replicas changed; 30s when zero.
	Resync time.Duration
	// RetryAfter is the wait after a failed refresh; 30s when zero.
	RetryAfter time.Duration
	Now        func() time.Time
}

// Refresher keeps every tenant's credential published: it obtains one from
// the Source, hands it to the Sink, and obtains the next before the current
// one expires. Tenants whose credential comes from the same source (the same
// installation, permissions and repositories) share one credential: one mint
// serves them all, and concurrent demand for it is coalesced. Run it on the
// leader only.
//
// Still a first cut: a fixed retry wait, and nothing persisted across
// restarts.
type Refresher struct {
	cfg      RefresherConfig
	registry *Registry
	source   Source
	sink     Sink
	log      *slog.Logger
	changed  chan string
	flight   singleflight.Group

	mu      sync.Mutex
	tenants map[string]*tenantState // by tenant id
	keys    map[string]*keyState    // by credentialKey
}

// tenantState is what the Refresher knows of a tenant.
type tenantState struct {
	tenant Tenant // as last read from the registry
	key    string
}

// keyState is one credential and the tenants it serves.
type keyState struct {
	cred        Credential
	due         time.Time
	lastRefresh time.Time
	lastErr     *CredentialError
	tenants     map[string]bool
}

// credentialKey names the credential a tenant needs: tenants with equal keys
// can share one. A PAT is its tenant's own (its fingerprint is in the key,
// so a new PAT is a new credential).
func credentialKey(t Tenant) string {
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

// NewRefresher returns a Refresher.
func NewRefresher(cfg RefresherConfig, registry *Registry, source Source, sink Sink, log *slog.Logger) *Refresher {
	if cfg.Lead == 0 {
		cfg.Lead = 15 * time.Minute
	}
	if cfg.PATRecheck == 0 {
		cfg.PATRecheck = 6 * time.Hour
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Refresher{cfg: cfg, registry: registry, source: source, sink: sink, log: log,
		changed: make(chan string, 64), tenants: map[string]*tenantState{}, keys: map[string]*keyState{}}
}

// Changed tells the Refresher that a tenant was created, updated or deleted,
// so it acts now rather than at the next resync. Run subscribes it to the
// Registry; changes made on other replicas arrive with the resync.
func (r *Refresher) Changed(tenantID string) {
	select {
	case r.changed <- tenantID:
	default: // a resync is as good; never block an API call
	}
}

// Run refreshes until ctx is done.
func (r *Refresher) Run(ctx context.Context) error {
	defer r.registry.Subscribe(r.Changed)()
	if err := r.resync(ctx); err != nil {
		return err
	}
	r.sink.PublishedAll()
	resync := time.NewTicker(r.cfg.Resync)
	defer resync.Stop()
	for {
		wait := time.NewTimer(max(r.nextDue().Sub(r.cfg.Now()), 0))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case id := <-r.changed:
			r.refreshTenant(ctx, id)
		case <-resync.C:
			if err := r.resync(ctx); err != nil {
				r.log.WarnContext(ctx, "resync tenants", slog.Any("error", err))
			}
		case <-wait.C:
			r.renewDue(ctx)
		}
		wait.Stop()
	}
}

// resync compares the stored tenants with what the Refresher knows.
func (r *Refresher) resync(ctx context.Context) error {
	seen := map[string]bool{}
	err := r.registry.each(ctx, func(t Tenant) error {
		seen[t.ID] = true
		r.mu.Lock()
		ts := r.tenants[t.ID]
		r.mu.Unlock()
		if ts == nil || ts.tenant.Version != t.Version {
			r.refresh(ctx, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	var gone []string
	for id := range r.tenants {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	r.mu.Unlock()
	for _, id := range gone {
		r.remove(ctx, id)
	}
	return nil
}

func (r *Refresher) refreshTenant(ctx context.Context, id string) {
	t, err := r.registry.Get(ctx, id)
	if err != nil {
		r.remove(ctx, id)
		return
	}
	r.refresh(ctx, t)
}

// track records t under its credential key, moving it off an old key.
func (r *Refresher) track(t Tenant) string {
	key := credentialKey(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.tenants[t.ID]; ts != nil && ts.key != key {
		r.untrackLocked(t.ID, ts.key)
	}
	r.tenants[t.ID] = &tenantState{tenant: t, key: key}
	ks := r.keys[key]
	if ks == nil {
		ks = &keyState{tenants: map[string]bool{}}
		r.keys[key] = ks
	}
	ks.tenants[t.ID] = true
	return key
}

func (r *Refresher) untrackLocked(id, key string) {
	if ks := r.keys[key]; ks != nil {
		delete(ks.tenants, id)
		if len(ks.tenants) == 0 {
			delete(r.keys, key)
		}
	}
}

func (r *Refresher) remove(ctx context.Context, id string) {
	if err := r.sink.Remove(ctx, id); err != nil {
		r.log.WarnContext(ctx, "remove tenant", slog.String("tenant", id), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.tenants[id]; ts != nil {
		r.untrackLocked(id, ts.key)
		delete(r.tenants, id)
	}
}

func (r *Refresher) nextDue() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.cfg.Now().Add(r.cfg.Resync)
	for _, ks := range r.keys {
		if ks.due.Before(next) {
			next = ks.due
		}
	}
	return next
}

func (r *Refresher) renewDue(ctx context.Context) {
	now := r.cfg.Now()
	var due []string
	r.mu.Lock()
	for key, ks := range r.keys {
		if !ks.due.After(now) {
			due = append(due, key)
		}
	}
	r.mu.Unlock()
	for _, key := range due {
		r.renew(ctx, key)
	}
}

// refresh brings one tenant up to date: a tenant whose credential is shared
// and still good gets that credential without a mint; otherwise its
// credential is renewed.
func (r *Refresher) refresh(ctx context.Context, t Tenant) {
	key := r.track(t)
	r.mu.Lock()
	ks := r.keys[key]
	cred, fresh := ks.cred, ks.cred.Token != "" && r.cfg.Now().Before(ks.due)
	r.mu.Unlock()
	if fresh {
		r.publish(ctx, cred, t)
		return
	}
	r.renew(ctx, key)
}

// renew obtains a new credential for key and publishes it to every tenant
// of the key. Concurrent renewals of one key share one call to the Source.
// On failure the last good credential stays published, the tenants hear
// why, and the key is tried again after RetryAfter (or GitHub's wait).
func (r *Refresher) renew(ctx context.Context, key string) {
	r.mu.Lock()
	ks := r.keys[key]
	if ks == nil {
		r.mu.Unlock()
		return
	}
	var source Tenant // any tenant of the key: they share the source
	for id := range ks.tenants {
		source = r.tenants[id].tenant
		break
	}
	r.mu.Unlock()
	v, err, _ := r.flight.Do(key, func() (any, error) { return r.obtain(ctx, source) })
	now := r.cfg.Now()
	r.mu.Lock()
	ks = r.keys[key]
	if ks == nil { // every tenant of the key went meanwhile
		r.mu.Unlock()
		return
	}
	ks.lastRefresh = now
	var tenants []Tenant
	for id := range ks.tenants {
		tenants = append(tenants, r.tenants[id].tenant)
	}
	if err != nil {
		wait := max(RetryAfterOf(err), r.cfg.RetryAfter)
		ks.due = now.Add(wait)
		reason := ReasonOf(err)
		ks.lastErr = &CredentialError{Reason: reason, Message: err.Error(), Time: now}
		r.mu.Unlock()
		msg := fmt.Sprintf("refreshing the registry credential failed (%s): %v; the last good credential stays until it expires", reason, err)
		for _, t := range tenants {
			r.log.WarnContext(ctx, "refresh failed", slog.String("tenant", t.ID), slog.String("reason", string(reason)),
				slog.Any("error", err), slog.Duration("retryIn", wait))
			r.sink.Report(t.ID, reason, msg)
		}
		return
	}
	cred := v.(Credential)
	ks.cred, ks.lastErr, ks.due = cred, nil, r.dueTime(cred, now)
	r.mu.Unlock()
	for _, t := range tenants {
		r.publish(ctx, cred, t)
	}
}

func (r *Refresher) publish(ctx context.Context, cred Credential, t Tenant) {
	if err := r.sink.Publish(ctx, t, cred); err != nil {
		r.log.WarnContext(ctx, "publish failed", slog.String("tenant", t.ID), slog.Any("error", err))
		return
	}
	r.log.InfoContext(ctx, "credential published", slog.String("tenant", t.ID), slog.Any("credential", cred))
}

// dueTime is when a credential is renewed: Lead before it expires (but no
// earlier than three quarters into its life, so short-lived tokens are not
// renewed at once), or for a PAT without expiry, after PATRecheck.
func (r *Refresher) dueTime(cred Credential, now time.Time) time.Time {
	if cred.ExpiresAt.IsZero() {
		return now.Add(r.cfg.PATRecheck)
	}
	lead := r.cfg.Lead
	if !cred.IssuedAt.IsZero() {
		lead = min(lead, cred.ExpiresAt.Sub(cred.IssuedAt)/4)
	}
	if due := cred.ExpiresAt.Add(-lead); due.After(now) {
		return due
	}
	return now.Add(time.Second) // expires within the lead: renew at once
}

func (r *Refresher) obtain(ctx context.Context, t Tenant) (Credential, error) {
	switch {
	case t.App != nil:
		return r.source.MintInstallationToken(ctx, t.App.InstallationID, t.App.Permissions, t.App.Repositories)
	case t.PAT != nil:
		token, err := r.registry.openPAT(t)
		if err != nil {
			return Credential{}, err
		}
		owner, err := r.source.ValidatePAT(ctx, token)
		if err != nil {
			return Credential{}, err
		}
		return Credential{Kind: KindPAT, Username: owner.Owner.Login, Token: token, IssuedAt: r.cfg.Now(), ExpiresAt: owner.ExpiresAt}, nil
	}
	return Credential{}, fmt.Errorf("tenant %q has no credential source", t.ID)
}

// CredentialState summarises whether a tenant can pull right now.
type CredentialState string

// Credential states.
const (
	CredentialPending  CredentialState = "PENDING"  // nothing obtained yet
	CredentialReady    CredentialState = "READY"    // a valid credential is published
	CredentialDegraded CredentialState = "DEGRADED" // published and valid, but refreshing it fails
	CredentialFailed   CredentialState = "FAILED"   // nothing valid to publish
)

// CredentialError is the last failure to obtain or publish a credential.
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
	Namespaces  []NamespaceSync
}

// Status reports a tenant's credential as this Refresher knows it.
func (r *Refresher) Status(tenantID string) CredentialStatus {
	now := r.cfg.Now()
	r.mu.Lock()
	status := CredentialStatus{TenantID: tenantID, State: CredentialPending}
	if ts := r.tenants[tenantID]; ts != nil {
		if ks := r.keys[ts.key]; ks != nil {
			status.LastRefresh, status.NextRefresh, status.LastError = ks.lastRefresh, ks.due, ks.lastErr
			if c := ks.cred; c.Token != "" {
				status.Kind, status.Fingerprint, status.Username, status.ExpiresAt = c.Kind, c.Fingerprint(), c.Username, c.ExpiresAt
			}
		}
	}
	r.mu.Unlock()
	expired := !status.ExpiresAt.IsZero() && !now.Before(status.ExpiresAt)
	switch {
	case status.Fingerprint == "" && status.LastError != nil, status.Fingerprint != "" && expired:
		status.State = CredentialFailed
	case status.Fingerprint != "" && status.LastError != nil:
		status.State = CredentialDegraded
	case status.Fingerprint != "":
		status.State = CredentialReady
	}
	status.Namespaces = r.sink.Status(tenantID)
	return status
}

// RefreshNow renews t's credential at once (for every tenant that shares
// it) and returns t's status.
func (r *Refresher) RefreshNow(ctx context.Context, t Tenant) CredentialStatus {
	r.renew(ctx, r.track(t))
	return r.Status(t.ID)
}

// Current returns the published credential of a tenant and the registries
// it was published for; ok is false when there is none.
func (r *Refresher) Current(tenantID string) (cred Credential, registries []string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tenants[tenantID]
	if ts == nil || r.keys[ts.key] == nil || r.keys[ts.key].cred.Token == "" {
		return Credential{}, nil, false
	}
	return r.keys[ts.key].cred, ts.tenant.Registries, true
}
