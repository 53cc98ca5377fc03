package broker

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"
)

// Source obtains credentials from GitHub.
type Source interface {
	MintInstallationToken(ctx context.Context, installationID int64, permissions map[string]string, repositories []string) (Credential, error)
	ValidatePAT(ctx context.Context, token string) (PATOwner, error)
}

// Prober proves that a credential pulls an image, or says why it does not.
type Prober interface {
	Probe(ctx context.Context, cred Credential, image string) error
}

// Refresh timing defaults.
const (
	// DefaultLead renews a 1-hour App token at 50 minutes (minus jitter):
	// at most 1.23 mints per installation per hour, and ten minutes in which
	// a failing renewal is retried before the token expires.
	DefaultLead       = 10 * time.Minute
	DefaultPATRecheck = 6 * time.Hour
	DefaultResync     = 30 * time.Second
	DefaultProbeRetry = 5 * time.Minute
)

// DefaultPATWarnings are how long before a PAT's expiry the backend is told.
func DefaultPATWarnings() []time.Duration {
	return []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour}
}

// RefresherConfig tunes a Refresher. Zero fields take their defaults;
// nil collaborators turn their feature off.
type RefresherConfig struct {
	// Lead is how long before expiry an App token is renewed (at most a
	// sixth of its life, so short-lived tokens are not renewed at once).
	Lead time.Duration
	// PATRecheck is how often a PAT is validated again.
	PATRecheck time.Duration
	// PATWarnings are the times before a PAT's expiry at which
	// CREDENTIAL_EXPIRING is raised; the last (smallest) is critical.
	PATWarnings []time.Duration
	// Resync is how often the tenant list is read again, for tenants that
	// other replicas changed.
	Resync time.Duration
	// ProbeRetry is the wait before a failed pull probe is tried again.
	ProbeRetry time.Duration
	Clock      clock.Clock
	// Jitter returns a number in [0, 1); math/rand/v2 when nil.
	Jitter func() float64

	Notifier    *Notifier
	Prober      Prober
	Credentials CredentialStore // with Sealer: credentials survive a restart
	Sealer      *Sealer
	Metrics     *Metrics
}

// Refresher keeps every tenant's credential published: it obtains one from
// the Source, proves it with the Prober, hands it to the Sink, and obtains
// the next before the current one expires. Tenants whose credential comes
// from the same source (installation, permissions, repositories) share one
// credential: one mint serves them all, and concurrent demand for it is
// coalesced. Run it on the leader only.
type Refresher struct {
	cfg      RefresherConfig
	registry *Registry
	source   Source
	sink     Sink
	log      *slog.Logger
	notifier *Notifier
	changes  changeSet
	flight   singleflight.Group

	mu       sync.Mutex
	tenants  map[string]*tenantState // by tenant id
	keys     map[string]*keyState    // by credentialKey
	resyncAt time.Time
}

// tenantState is what the Refresher knows of a tenant.
type tenantState struct {
	tenant Tenant // as last read from the registry
	key    string
	// published is what the Sink holds for the tenant, and publishedOwner
	// the owner it was proved for: a credential of another kind or owner
	// must pass the probe again.
	published      Credential
	publishedOwner int64
	probe          *ProbeResult // the last probe, if any
	probeAt        time.Time    // when a failed probe is tried again
}

// ProbeResult is the outcome of a tenant's last pull probe.
type ProbeResult struct {
	Image string
	Pulls bool
	Error *CredentialError
	Time  time.Time
}

// keyState is one credential and the tenants it serves.
type keyState struct {
	cred        Credential
	validated   time.Time // when GitHub last vouched for cred
	due         time.Time
	lastRefresh time.Time
	lastErr     *CredentialError
	failures    int // consecutive
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
		cfg.Lead = DefaultLead
	}
	if cfg.PATRecheck == 0 {
		cfg.PATRecheck = DefaultPATRecheck
	}
	if cfg.PATWarnings == nil {
		cfg.PATWarnings = DefaultPATWarnings()
	}
	cfg.PATWarnings = slices.Clone(cfg.PATWarnings)
	slices.SortFunc(cfg.PATWarnings, func(a, b time.Duration) int { return int(b - a) })
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.ProbeRetry == 0 {
		cfg.ProbeRetry = DefaultProbeRetry
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	return &Refresher{cfg: cfg, registry: registry, source: source, sink: sink, log: log, notifier: cfg.Notifier,
		changes: changeSet{ids: map[string]bool{}, wake: make(chan struct{}, 1)},
		tenants: map[string]*tenantState{}, keys: map[string]*keyState{}}
}

func (r *Refresher) now() time.Time { return r.cfg.Clock.Now() }

// Changed tells the Refresher that a tenant was created, updated or deleted,
// so it acts now rather than at the next resync. Run subscribes it to the
// Registry; changes made on other replicas arrive with the resync.
func (r *Refresher) Changed(tenantID string) { r.changes.add(tenantID) }

// changeSet coalesces tenant changes: a burst of registrations is never
// dropped, and a tenant changed twice is read once.
type changeSet struct {
	mu   sync.Mutex
	ids  map[string]bool
	wake chan struct{}
}

func (c *changeSet) add(id string) {
	c.mu.Lock()
	c.ids[id] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *changeSet) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.ids))
	for id := range c.ids {
		ids = append(ids, id)
	}
	clear(c.ids)
	slices.Sort(ids)
	return ids
}

// Run refreshes until ctx is done.
func (r *Refresher) Run(ctx context.Context) error {
	defer r.registry.Subscribe(r.Changed)()
	if err := r.resync(ctx); err != nil {
		return err
	}
	r.sink.PublishedAll()
	for {
		next := r.Step(ctx)
		wait := r.cfg.Clock.NewTimer(max(next.Sub(r.now()), 0))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-r.changes.wake:
		case <-wait.C():
		}
		wait.Stop()
	}
}

// Step does everything that is due now — tenant changes, the periodic
// resync, renewals, probe retries — and returns when the Refresher next
// has work. Run calls it in a loop; simulations call it with a fake clock.
func (r *Refresher) Step(ctx context.Context) time.Time {
	for _, id := range r.changes.take() {
		r.refreshTenant(ctx, id)
	}
	r.mu.Lock()
	resync := !r.now().Before(r.resyncAt)
	r.mu.Unlock()
	if resync {
		if err := r.resync(ctx); err != nil {
			r.log.WarnContext(ctx, "resync tenants", slog.Any("error", err))
		}
	}
	now := r.now()
	var keys, probes []string
	r.mu.Lock()
	for key, ks := range r.keys {
		if !ks.due.After(now) {
			keys = append(keys, key)
		}
	}
	for id, ts := range r.tenants {
		if !ts.probeAt.IsZero() && !ts.probeAt.After(now) {
			probes = append(probes, id)
		}
	}
	r.mu.Unlock()
	slices.Sort(keys)
	for _, key := range keys {
		r.renew(ctx, key, "")
	}
	for _, id := range probes {
		r.retryProbe(ctx, id)
	}
	return r.nextWake()
}

func (r *Refresher) nextWake() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.resyncAt
	for _, ks := range r.keys {
		if ks.due.Before(next) {
			next = ks.due
		}
	}
	for _, ts := range r.tenants {
		if !ts.probeAt.IsZero() && ts.probeAt.Before(next) {
			next = ts.probeAt
		}
	}
	return next
}

// resync compares the stored tenants with what the Refresher knows.
func (r *Refresher) resync(ctx context.Context) error {
	r.mu.Lock()
	r.resyncAt = r.now().Add(r.cfg.Resync)
	r.mu.Unlock()
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

// track records t under its credential key, moving it off an old key. A
// key seen for the first time starts from its stored credential, if one is
// stored and still good.
func (r *Refresher) track(ctx context.Context, t Tenant) string {
	key := credentialKey(t)
	r.mu.Lock()
	ts := r.tenants[t.ID]
	var dropped string
	if ts != nil && ts.key != key {
		dropped = r.untrackLocked(t.ID, ts.key)
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
	if dropped != "" {
		r.forgetStored(ctx, dropped)
	}
	if isNew {
		r.loadStored(ctx, key)
	}
	return key
}

// untrackLocked takes a tenant off a key and returns the key if no tenant
// is left on it.
func (r *Refresher) untrackLocked(id, key string) string {
	ks := r.keys[key]
	if ks == nil {
		return ""
	}
	delete(ks.tenants, id)
	if len(ks.tenants) > 0 {
		return ""
	}
	delete(r.keys, key)
	return key
}

func (r *Refresher) remove(ctx context.Context, id string) {
	if err := r.sink.Remove(ctx, id); err != nil {
		r.log.WarnContext(ctx, "remove tenant", slog.String("tenant", id), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	var dropped string
	if ts := r.tenants[id]; ts != nil {
		dropped = r.untrackLocked(id, ts.key)
		delete(r.tenants, id)
	}
	r.mu.Unlock()
	if dropped != "" {
		r.forgetStored(ctx, dropped)
	}
	r.cfg.Metrics.forget(id)
	// A tenant registered again under this id starts without old conditions.
	r.notifier.ResolvePrefix(ctx, id+"/", "tenant "+id+" was removed")
}

// refresh brings one tenant up to date: a tenant whose credential is shared
// and still good gets that credential without a mint; otherwise its
// credential is renewed.
func (r *Refresher) refresh(ctx context.Context, t Tenant) {
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
func (r *Refresher) renew(ctx context.Context, key, probeTenant string) {
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
	r.cfg.Metrics.refreshed(kindOf(source), err)
	if err != nil {
		r.fail(ctx, key, err)
		return
	}
	cred := v.(Credential)
	now := r.now()
	r.mu.Lock()
	ks = r.keys[key]
	if ks == nil { // every tenant of the key went meanwhile
		r.mu.Unlock()
		return
	}
	ks.cred, ks.validated, ks.lastRefresh, ks.lastErr, ks.failures = cred, now, now, nil, 0
	ks.due = r.dueTime(cred, now)
	tenants := r.tenantsLocked(ks)
	r.mu.Unlock()
	r.store(ctx, key, cred, now)
	for _, t := range tenants {
		r.notifier.Resolve(ctx, t.ID+"/credential", "the credential was renewed")
		r.notifier.Resolve(ctx, t.ID+"/expiring", "the credential was renewed")
		r.warnPATExpiry(ctx, t, cred, now)
		r.deliver(ctx, t, cred, t.ID == probeTenant)
	}
}

func kindOf(t Tenant) CredentialKind {
	if t.PAT != nil {
		return KindPAT
	}
	return KindGitHubApp
}

func (r *Refresher) tenantsLocked(ks *keyState) []Tenant {
	tenants := make([]Tenant, 0, len(ks.tenants))
	for id := range ks.tenants {
		tenants = append(tenants, r.tenants[id].tenant)
	}
	slices.SortFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	return tenants
}

// fail records a failed refresh of key: the last good credential stays
// published, the key is tried again after a backoff, and the tenants'
// owners are told.
func (r *Refresher) fail(ctx context.Context, key string, err error) {
	now := r.now()
	reason := ReasonOf(err)
	r.mu.Lock()
	ks := r.keys[key]
	if ks == nil {
		r.mu.Unlock()
		return
	}
	ks.failures++
	ks.lastRefresh = now
	ks.lastErr = &CredentialError{Reason: reason, Message: err.Error(), Time: now}
	wait := r.retryWait(ks, err, now)
	ks.due = now.Add(wait)
	cred, failures := ks.cred, ks.failures
	tenants := r.tenantsLocked(ks)
	r.mu.Unlock()

	valid := cred.Token != "" && (cred.ExpiresAt.IsZero() || now.Before(cred.ExpiresAt))
	for _, t := range tenants {
		r.log.WarnContext(ctx, "refresh failed", slog.String("tenant", t.ID), slog.String("reason", string(reason)),
			slog.Any("error", err), slog.Duration("retryIn", wait), slog.Int("failures", failures))
		// One transient failure, retried within seconds, is not news; a
		// second one, or one only a person can fix, is.
		if permanent(reason) || failures > 1 || !valid {
			r.raise(ctx, failureEvent(t.ID, reason, err, valid))
		}
		if cred.Kind == KindGitHubApp && valid && cred.ExpiresAt.Sub(now) <= r.cfg.Lead/2 {
			r.raise(ctx, Event{Type: EventCredentialExpiring, TenantID: t.ID, Severity: SeverityCritical, Reason: reason,
				DedupeKey: t.ID + "/expiring",
				Message: fmt.Sprintf("the registry credential expires at %s and renewing it keeps failing (%s); pulls fail after that",
					cred.ExpiresAt.UTC().Format(time.RFC3339), reason)})
		}
	}
}

// failureEvent names a failed refresh.
func failureEvent(tenantID string, reason Reason, err error, valid bool) Event {
	ev := Event{Type: EventCredentialRefreshFailed, TenantID: tenantID, Severity: SeverityWarning, Reason: reason,
		DedupeKey: tenantID + "/credential"}
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

// raise notifies about a condition and, if it is news, reports it to the
// tenant's workloads through the Sink (Kubernetes Events).
func (r *Refresher) raise(ctx context.Context, ev Event) {
	if r.notifier.Raise(ctx, ev) {
		r.sink.Report(ev.TenantID, ev.Reason, ev.Message)
	}
}

// permanent reports whether only a person can fix a failure: retrying soon
// would not help, and hammering GitHub about it would.
func permanent(reason Reason) bool {
	switch reason {
	case ReasonTokenRevoked, ReasonMissingScope, ReasonInstallationNotFound, ReasonInstallationSuspended,
		ReasonOwnerMismatch, ReasonFineGrainedPAT, ReasonAppCredentialsRejected:
		return true
	}
	return false
}

// retryWait is how long a failed key waits: an exponential backoff with
// jitter (5s to 5m; 1m to 1h for failures only a person can fix), no longer
// than half the remaining life of the last good credential (so that a short
// outage is retried before it expires) or than the time left until the
// expiry warning is due, and no sooner than GitHub asks.
func (r *Refresher) retryWait(ks *keyState, err error, now time.Time) time.Duration {
	floor, ceiling := 5*time.Second, 5*time.Minute
	if permanent(ReasonOf(err)) {
		floor, ceiling = time.Minute, time.Hour
	}
	wait := backoff(ks.failures-1, floor, ceiling, r.cfg.Jitter)
	if exp := ks.cred.ExpiresAt; ks.cred.Token != "" && !exp.IsZero() && now.Before(exp) {
		wait = min(wait, exp.Sub(now)/2)
		// Be trying at the moment the expiry warning is due.
		if warn := exp.Add(-r.cfg.Lead / 2); ks.cred.Kind == KindGitHubApp && warn.After(now) {
			wait = min(wait, warn.Sub(now))
		}
	}
	return max(wait, RetryAfterOf(err), time.Second)
}

// backoff is the wait before retry n (from 0): floor doubled n times, at
// most ceiling, of which a random half ("equal jitter"), so that many
// clients failing at once do not retry at once.
func backoff(n int, floor, ceiling time.Duration, jitter func() float64) time.Duration {
	d := ceiling
	if n < 30 && floor<<n < ceiling {
		d = floor << n
	}
	return d/2 + time.Duration(jitter()*float64(d/2))
}

// deliver publishes cred to t: after a successful probe when t has a probe
// image and cred is of another kind or owner than what t holds (or force).
func (r *Refresher) deliver(ctx context.Context, t Tenant, cred Credential, force bool) {
	r.mu.Lock()
	ts := r.tenants[t.ID]
	if ts == nil {
		r.mu.Unlock()
		return
	}
	held := ts.published
	probe := t.ProbeImage != "" && r.cfg.Prober != nil &&
		(force || held.Token == "" || held.Kind != cred.Kind || held.Username != cred.Username || ts.publishedOwner != t.Owner.ID)
	r.mu.Unlock()

	if probe {
		err := r.cfg.Prober.Probe(ctx, cred, t.ProbeImage)
		r.cfg.Metrics.probed(err)
		r.recordProbe(t.ID, t.ProbeImage, err)
		if err != nil {
			r.probeFailed(ctx, t, held, err)
			return
		}
		r.notifier.Resolve(ctx, t.ID+"/probe", "the credential pulls "+t.ProbeImage)
	}
	if err := r.sink.Publish(ctx, t, cred); err != nil {
		r.log.WarnContext(ctx, "publish failed", slog.String("tenant", t.ID), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	if ts := r.tenants[t.ID]; ts != nil {
		ts.published, ts.publishedOwner = cred, t.Owner.ID
		if probe {
			ts.probeAt = time.Time{}
		}
	}
	r.mu.Unlock()
	r.cfg.Metrics.published(t.ID, cred.ExpiresAt)
	r.log.InfoContext(ctx, "credential published", slog.String("tenant", t.ID), slog.Any("credential", cred))
}

func (r *Refresher) recordProbe(tenantID, image string, err error) {
	res := &ProbeResult{Image: image, Pulls: err == nil, Time: r.now()}
	if err != nil {
		res.Error = &CredentialError{Reason: ReasonOf(err), Message: err.Error(), Time: res.Time}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.tenants[tenantID]; ts != nil {
		ts.probe = res
	}
}

func (r *Refresher) probeFailed(ctx context.Context, t Tenant, held Credential, err error) {
	now := r.now()
	reason := ReasonOf(err)
	r.mu.Lock()
	if ts := r.tenants[t.ID]; ts != nil {
		ts.probeAt = now.Add(r.cfg.ProbeRetry)
	}
	r.mu.Unlock()
	severity, kept := SeverityWarning, "the credential it holds stays published"
	if held.Token == "" {
		severity, kept = SeverityCritical, "nothing was published"
	}
	r.log.WarnContext(ctx, "probe failed", slog.String("tenant", t.ID), slog.String("image", t.ProbeImage),
		slog.String("reason", string(reason)), slog.Any("error", err))
	r.raise(ctx, Event{Type: EventProbeFailed, TenantID: t.ID, Severity: severity, Reason: reason, DedupeKey: t.ID + "/probe",
		Message: fmt.Sprintf("the new credential does not pull %s: %v; %s", t.ProbeImage, err, kept)})
}

func (r *Refresher) retryProbe(ctx context.Context, id string) {
	r.mu.Lock()
	ts := r.tenants[id]
	var t Tenant
	var cred Credential
	if ts != nil && r.keys[ts.key] != nil {
		t, cred = ts.tenant, r.keys[ts.key].cred
	}
	r.mu.Unlock()
	if cred.Token != "" {
		r.deliver(ctx, t, cred, true)
	}
}

// dueTime is when a credential is renewed. An App token: Lead before it
// expires (at most a sixth of its life), earlier by up to a tenth of the
// lead at random so that installations minted together spread out. A PAT:
// PATRecheck after its validation, or at its next expiry warning if sooner.
func (r *Refresher) dueTime(cred Credential, validated time.Time) time.Time {
	if cred.Kind == KindPAT || cred.ExpiresAt.IsZero() {
		due := validated.Add(r.cfg.PATRecheck)
		for _, before := range append(slices.Clone(r.cfg.PATWarnings), 0) {
			if cred.ExpiresAt.IsZero() {
				break
			}
			if at := cred.ExpiresAt.Add(-before); at.After(validated) && at.Before(due) {
				due = at
			}
		}
		return due
	}
	lead := r.cfg.Lead
	if !cred.IssuedAt.IsZero() {
		lead = min(lead, cred.ExpiresAt.Sub(cred.IssuedAt)/6)
	}
	lead += time.Duration(r.cfg.Jitter() * float64(lead/10))
	if due := cred.ExpiresAt.Add(-lead); due.After(validated) {
		return due
	}
	return validated.Add(time.Second) // expires within the lead: renew at once
}

// warnPATExpiry raises CREDENTIAL_EXPIRING for the nearest warning
// threshold a PAT has crossed (once per threshold), and resolves the
// warnings when the tenant's PAT no longer expires soon.
func (r *Refresher) warnPATExpiry(ctx context.Context, t Tenant, cred Credential, now time.Time) {
	if cred.Kind != KindPAT {
		return
	}
	left := cred.ExpiresAt.Sub(now)
	crossed := -1
	for i, before := range r.cfg.PATWarnings {
		if !cred.ExpiresAt.IsZero() && left <= before {
			crossed = i
		}
	}
	if crossed < 0 {
		r.notifier.ResolvePrefix(ctx, t.ID+"/expiring/", "the tenant's PAT no longer expires soon")
		return
	}
	before := r.cfg.PATWarnings[crossed]
	severity := SeverityWarning
	if crossed == len(r.cfg.PATWarnings)-1 {
		severity = SeverityCritical
	}
	r.raise(ctx, Event{Type: EventCredentialExpiring, TenantID: t.ID, Severity: severity,
		DedupeKey: fmt.Sprintf("%s/expiring/%s", t.ID, before),
		Message: fmt.Sprintf("the tenant's PAT (%s) expires at %s, in %s; register a new one",
			cred.Fingerprint(), cred.ExpiresAt.UTC().Format(time.RFC3339), left.Round(time.Minute))})
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
		return Credential{Kind: KindPAT, Username: owner.Owner.Login, Token: token, IssuedAt: r.now(), ExpiresAt: owner.ExpiresAt}, nil
	}
	return Credential{}, fmt.Errorf("tenant %q has no credential source", t.ID)
}

// InstallationChange is what GitHub's installation webhook says happened.
type InstallationChange string

// Installation changes.
const (
	InstallationSuspended          InstallationChange = "suspend"
	InstallationUnsuspended        InstallationChange = "unsuspend"
	InstallationDeleted            InstallationChange = "deleted"
	InstallationPermissionsChanged InstallationChange = "new_permissions_accepted"
)

// InstallationChanged acts on GitHub's word about an installation at once:
// a suspended or deleted installation stops its refreshes (retried hourly,
// in case the word is lost) and its tenants' owners are told; an
// unsuspended one, or one with new permissions, is renewed now.
func (r *Refresher) InstallationChanged(ctx context.Context, installationID int64, change InstallationChange) {
	r.mu.Lock()
	var keys []string
	for key, ks := range r.keys {
		for id := range ks.tenants {
			if app := r.tenants[id].tenant.App; app != nil && app.InstallationID == installationID {
				keys = append(keys, key)
				break
			}
		}
	}
	r.mu.Unlock()
	slices.Sort(keys)
	for _, key := range keys {
		switch change {
		case InstallationSuspended:
			r.fail(ctx, key, &VerifyError{Cause: ReasonInstallationSuspended, Msg: fmt.Sprintf("GitHub reports installation %d suspended", installationID)})
		case InstallationDeleted:
			r.fail(ctx, key, &VerifyError{Cause: ReasonInstallationNotFound, Msg: fmt.Sprintf("GitHub reports installation %d deleted", installationID)})
		case InstallationUnsuspended, InstallationPermissionsChanged:
			r.renew(ctx, key, "")
		}
	}
}

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
}

// Status reports the credential a tenant holds as this Refresher knows it.
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
	status.Namespaces = r.sink.Status(tenantID)
	return status
}

// RefreshNow renews t's credential at once (for every tenant that shares
// it), proves it for t, and returns t's status.
func (r *Refresher) RefreshNow(ctx context.Context, t Tenant) CredentialStatus {
	r.renew(ctx, r.track(ctx, t), t.ID)
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
