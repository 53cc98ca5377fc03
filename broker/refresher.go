package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
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
// one expires. Run it on the leader only.
//
// This is the first cut: one credential per tenant, a fixed retry wait, and
// nothing persisted across restarts.
type Refresher struct {
	cfg      RefresherConfig
	registry *Registry
	source   Source
	sink     Sink
	log      *slog.Logger
	changed  chan string

	mu    sync.Mutex
	state map[string]*tenantState
}

type tenantState struct {
	tenant      Tenant // as of the last successful publication
	version     string // the tenant version the credential was published for
	due         time.Time
	cred        Credential
	lastRefresh time.Time
	lastErr     *CredentialError
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
		changed: make(chan string, 64), state: map[string]*tenantState{}}
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
			r.refreshDue(ctx)
		}
		wait.Stop()
	}
}

// resync compares the stored tenants with what is published.
func (r *Refresher) resync(ctx context.Context) error {
	seen := map[string]bool{}
	err := r.registry.each(ctx, func(t Tenant) error {
		seen[t.ID] = true
		r.mu.Lock()
		st := r.state[t.ID]
		r.mu.Unlock()
		if st == nil || st.version != t.Version {
			r.refresh(ctx, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	var gone []string
	for id := range r.state {
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

func (r *Refresher) remove(ctx context.Context, id string) {
	if err := r.sink.Remove(ctx, id); err != nil {
		r.log.WarnContext(ctx, "remove tenant", slog.String("tenant", id), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	delete(r.state, id)
	r.mu.Unlock()
}

func (r *Refresher) nextDue() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.cfg.Now().Add(r.cfg.Resync)
	for _, st := range r.state {
		if st.due.Before(next) {
			next = st.due
		}
	}
	return next
}

func (r *Refresher) refreshDue(ctx context.Context) {
	now := r.cfg.Now()
	var due []string
	r.mu.Lock()
	for id, st := range r.state {
		if !st.due.After(now) {
			due = append(due, id)
		}
	}
	r.mu.Unlock()
	for _, id := range due {
		r.refreshTenant(ctx, id)
	}
}

// refresh obtains a credential for t and publishes it. On failure the last
// published credential stays and the tenant is tried again after RetryAfter.
func (r *Refresher) refresh(ctx context.Context, t Tenant) {
	log := r.log.With(slog.String("tenant", t.ID))
	cred, err := r.obtain(ctx, t)
	if err == nil {
		err = r.sink.Publish(ctx, t, cred)
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state[t.ID]
	if st == nil {
		st = &tenantState{}
		r.state[t.ID] = st
	}
	st.lastRefresh = now
	if err != nil {
		wait := max(RetryAfterOf(err), r.cfg.RetryAfter)
		st.due = now.Add(wait)
		reason := ReasonOf(err)
		st.lastErr = &CredentialError{Reason: reason, Message: err.Error(), Time: now}
		log.WarnContext(ctx, "refresh failed", slog.String("reason", string(reason)), slog.Any("error", err), slog.Duration("retryIn", wait))
		r.sink.Report(t.ID, reason, fmt.Sprintf("refreshing the registry credential failed (%s): %v; the last good credential stays until it expires", reason, err))
		return
	}
	st.tenant, st.version, st.cred, st.lastErr = t, t.Version, cred, nil
	st.due = r.dueTime(cred, now)
	log.InfoContext(ctx, "credential published", slog.Any("credential", cred), slog.Time("next", st.due))
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
	st := r.state[tenantID]
	status := CredentialStatus{TenantID: tenantID, State: CredentialPending}
	if st != nil {
		status.LastRefresh, status.NextRefresh, status.LastError = st.lastRefresh, st.due, st.lastErr
		if c := st.cred; c.Token != "" {
			status.Kind, status.Fingerprint, status.Username, status.ExpiresAt = c.Kind, c.Fingerprint(), c.Username, c.ExpiresAt
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

// RefreshNow runs one refresh of the tenant at once and returns its status.
func (r *Refresher) RefreshNow(ctx context.Context, tenantID string) (CredentialStatus, error) {
	t, err := r.registry.Get(ctx, tenantID)
	if err != nil {
		return CredentialStatus{}, err
	}
	r.refresh(ctx, t)
	return r.Status(tenantID), nil
}

// Current returns the published credential of a tenant and the registries
// it was published for; ok is false when there is none.
func (r *Refresher) Current(tenantID string) (cred Credential, registries []string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state[tenantID]
	if st == nil || st.cred.Token == "" {
		return Credential{}, nil, false
	}
	return st.cred, st.tenant.Registries, true
}
