package refresh

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/exchange"
	"github.com/credbroker/credbroker/broker/internal/kit"
	"github.com/credbroker/credbroker/broker/notify"
	"github.com/credbroker/credbroker/broker/registryhealth"

	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"
)

// Config tunes a Refresher. Zero fields take their defaults;
// nil collaborators turn their feature off.
type Config struct {
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
	// ProbeTimeout bounds one pull probe, retries and all, so that a
	// registry that hangs costs its tenant that long and nobody else
	// anything; DefaultProbeTimeout when zero.
	ProbeTimeout time.Duration
	// ProbeWorkers is how many probes run at once, apart from renewals;
	// DefaultProbeWorkers when zero.
	ProbeWorkers int
	// RenewTimeout bounds one renewal: the call to GitHub, storing and
	// delivering; DefaultRenewTimeout when zero.
	RenewTimeout time.Duration
	Clock        clock.Clock
	// Jitter returns a number in [0, 1); math/rand/v2 when nil.
	Jitter func() float64

	Notifier *notify.Notifier
	Prober   broker.Prober
	// GitHub, if set, is asked about an installation before a webhook
	// delivery about it is acted on (Act); without it none is.
	GitHub      broker.GitHub
	Credentials broker.CredentialStore // with Sealer: credentials survive a restart
	// Publications, if set, gets every tenant's published credential, for
	// the credential provider exchange on any replica.
	Publications *exchange.Publications
	Sealer       *broker.Sealer
	Metrics      *broker.Metrics
	// Registries, if set, checks the tenants' further registries; Status
	// reports what it found.
	Registries *registryhealth.Monitor
	// Revoker, if set, revokes App tokens RevokeGrace after a newer one
	// superseded them or their last tenant left (DefaultRevokeGrace when
	// zero).
	Revoker     broker.Revoker
	RevokeGrace time.Duration
}

// Refresher keeps every tenant's credential published: it obtains one from
// the Source, proves it with the Prober, hands it to the Sink, and obtains
// the next before the current one expires. Tenants whose credential comes
// from the same source (installation, permissions, repositories) share one
// credential: one mint serves them all, and concurrent demand for it is
// coalesced. Run it on the leader only.
type Refresher struct {
	cfg      Config
	registry *broker.Tenants
	source   broker.Source
	sink     broker.Sink
	log      *slog.Logger
	notifier *notify.Notifier
	timing   timing
	changes  kit.ChangeSet
	flight   singleflight.Group
	// probeSlots bounds the probes running at once; probing counts them,
	// for RenewNow and tests to wait on.
	probeSlots chan struct{}
	probing    sync.WaitGroup

	mu       sync.Mutex
	tenants  map[string]*tenantState // by tenant id
	keys     map[string]*keyState    // by credentialKey
	retired  []retiredToken          // to revoke, by due time
	resyncAt time.Time
	// life is Run's context: work that belongs to no caller (a shared
	// renewal, a probe) runs on it, so it ends when this replica stops
	// refreshing (leadership lost) and not when a caller leaves.
	life context.Context
}

// New returns a Refresher.
func New(cfg Config, registry *broker.Tenants, source broker.Source, sink broker.Sink, log *slog.Logger) *Refresher {
	if cfg.Lead == 0 {
		cfg.Lead = DefaultLead
	}
	if cfg.PATRecheck == 0 {
		cfg.PATRecheck = DefaultPATRecheck
	}
	cfg.PATWarnings = kit.ExpiryWarnings(cfg.PATWarnings)
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.RevokeGrace == 0 {
		cfg.RevokeGrace = DefaultRevokeGrace
	}
	if cfg.ProbeRetry == 0 {
		cfg.ProbeRetry = DefaultProbeRetry
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if cfg.ProbeWorkers == 0 {
		cfg.ProbeWorkers = DefaultProbeWorkers
	}
	if cfg.RenewTimeout == 0 {
		cfg.RenewTimeout = DefaultRenewTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	return &Refresher{cfg: cfg, registry: registry, source: source, sink: sink, log: log, notifier: cfg.Notifier,
		timing:     timing{lead: cfg.Lead, patRecheck: cfg.PATRecheck, patWarnings: cfg.PATWarnings, jitter: cfg.Jitter},
		changes:    kit.NewChangeSet(),
		probeSlots: make(chan struct{}, cfg.ProbeWorkers),
		tenants:    map[string]*tenantState{}, keys: map[string]*keyState{}}
}

func (r *Refresher) now() time.Time { return r.cfg.Clock.Now() }

// detached is the context for work that belongs to no caller: Run's, or,
// when Run was never called (simulations drive Step), ctx without its
// cancellation.
func (r *Refresher) detached(ctx context.Context) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.detachedLocked(ctx)
}

func (r *Refresher) detachedLocked(ctx context.Context) context.Context {
	if r.life != nil {
		return r.life
	}
	return context.WithoutCancel(ctx)
}

// Changed tells the Refresher that a tenant was created, updated or deleted,
// so it acts now rather than at the next resync. Run subscribes it to
// Tenants; changes made on other replicas arrive with the resync.
func (r *Refresher) Changed(tenantID string) { r.changes.Add(tenantID) }

// Run refreshes until ctx is done.
func (r *Refresher) Run(ctx context.Context) error {
	r.mu.Lock()
	r.life = ctx
	r.mu.Unlock()
	defer r.probing.Wait()
	defer r.registry.Subscribe(r.Changed)()
	if err := r.syncAll(ctx); err != nil {
		return err
	}
	r.sink.PublishedAll()
	kit.StepUntilDone(ctx, r.cfg.Clock, r.changes.Wake, r.Step)
	return nil
}

// Step does everything that is due now — tenant changes, the periodic
// resync, renewals, probe retries — and returns when the Refresher next
// has work. Run calls it in a loop; simulations call it with a fake clock.
func (r *Refresher) Step(ctx context.Context) time.Time {
	for _, id := range r.changes.Take() {
		r.syncTenantID(ctx, id)
	}
	r.mu.Lock()
	resync := !r.now().Before(r.resyncAt)
	r.mu.Unlock()
	if resync {
		if err := r.syncAll(ctx); err != nil {
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
	r.revokeDue(ctx)
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
	for _, rt := range r.retired {
		if rt.at.Before(next) {
			next = rt.at
		}
	}
	return next
}

// syncAll compares the stored tenants with what the Refresher knows.
func (r *Refresher) syncAll(ctx context.Context) error {
	r.mu.Lock()
	r.resyncAt = r.now().Add(r.cfg.Resync)
	r.mu.Unlock()
	seen := map[string]bool{}
	err := r.registry.Each(ctx, func(t broker.Tenant) error {
		seen[t.ID] = true
		r.mu.Lock()
		ts := r.tenants[t.ID]
		r.mu.Unlock()
		if ts == nil || ts.tenant.Version != t.Version {
			r.syncTenant(ctx, t)
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
	r.cfg.Publications.KeepOnly(ctx, seen, r.log)
	return nil
}
