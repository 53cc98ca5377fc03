package registryhealth

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/kit"
	"github.com/credbroker/credbroker/broker/notify"

	"k8s.io/utils/clock"
)

// Defaults of RegistryHealthConfig.
const (
	DefaultRegistryCheckInterval = 5 * time.Minute
	DefaultRegistryCheckTimeout  = 30 * time.Second
	registryCheckWorkers         = 4
)

// Config tunes a Monitor; zero fields take defaults.
type Config struct {
	// Interval is how often each credential is checked, and how often the
	// tenant list is read again for changes made on other replicas.
	Interval time.Duration
	// Timeout bounds one check, so a registry that hangs delays the next
	// round by that much at most.
	Timeout time.Duration
	// Warnings are the times before an expiry date at which
	// CREDENTIAL_EXPIRING is raised; DefaultPATWarnings when nil.
	Warnings []time.Duration
	Clock    clock.Clock
	Notifier *notify.Notifier
	Reporter broker.EventReporter // nil: no Kubernetes Events
}

// Monitor checks every tenant's registry credentials periodically
// and warns before they expire: a failing check is a REGISTRY_CHECK_FAILED
// condition and an Event in the tenant's namespaces, the approach of an
// expiry date CREDENTIAL_EXPIRING at each warning threshold. Run it on the
// leader, beside the Refresher, whose Status includes what it found.
type Monitor struct {
	cfg      Config
	registry *broker.Tenants
	checker  broker.RegistryChecker
	log      *slog.Logger
	changes  kit.ChangeSet

	mu      sync.Mutex
	tenants map[string]map[string]*registryEntry // tenant → host → entry
	scanAt  time.Time
}

// registryEntry is one credential under watch and what its checks found.
type registryEntry struct {
	cred                 broker.RegistryCredential // as stored: sealed
	state                broker.RegistryState
	lastCheck, nextCheck time.Time
	err                  *broker.CredentialError
}

// NewMonitor returns a Monitor over the tenants of registry.
func NewMonitor(cfg Config, registry *broker.Tenants, checker broker.RegistryChecker, log *slog.Logger) *Monitor {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultRegistryCheckInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultRegistryCheckTimeout
	}
	cfg.Warnings = kit.ExpiryWarnings(cfg.Warnings)
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Monitor{cfg: cfg, registry: registry, checker: checker, log: log,
		changes: kit.NewChangeSet(),
		tenants: map[string]map[string]*registryEntry{}}
}

// Run checks until ctx is done.
func (h *Monitor) Run(ctx context.Context) error {
	defer h.registry.Subscribe(h.changes.Add)()
	kit.StepUntilDone(ctx, h.cfg.Clock, h.changes.Wake, h.Step)
	return nil
}

// Step takes in tenant changes, checks what is due, raises the expiry
// warnings that are due, and returns when it next has work.
func (h *Monitor) Step(ctx context.Context) time.Time {
	for _, id := range h.changes.Take() {
		t, err := h.registry.Get(ctx, id)
		switch {
		case errors.Is(err, broker.ErrNotFound):
			h.forget(ctx, id)
		case err != nil:
			h.log.WarnContext(ctx, "read a changed tenant for its registry checks", slog.String("tenant", id), slog.Any("error", err))
		default:
			h.track(ctx, t)
		}
	}
	if now := h.cfg.Clock.Now(); !now.Before(h.scanAtNow()) {
		h.scan(ctx, now)
	}
	h.warnExpiring(ctx)
	h.checkDue(ctx)
	return h.nextWake()
}

func (h *Monitor) scanAtNow() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.scanAt
}

// scan reads every tenant again: changes on other replicas, and tenants
// that went.
func (h *Monitor) scan(ctx context.Context, now time.Time) {
	h.mu.Lock()
	h.scanAt = now.Add(h.cfg.Interval)
	h.mu.Unlock()
	seen := map[string]bool{}
	err := h.registry.Each(ctx, func(t broker.Tenant) error {
		seen[t.ID] = true
		h.track(ctx, t)
		return nil
	})
	if err != nil {
		h.log.WarnContext(ctx, "read the tenants for their registry checks", slog.Any("error", err))
		return
	}
	h.mu.Lock()
	gone := slices.Collect(func(yield func(string) bool) {
		for id := range h.tenants {
			if !seen[id] && !yield(id) {
				return
			}
		}
	})
	h.mu.Unlock()
	for _, id := range gone {
		h.forget(ctx, id)
	}
}

// track watches t's credentials: a new or rotated one is checked at once,
// and the conditions of one rotated or removed are resolved.
func (h *Monitor) track(ctx context.Context, t broker.Tenant) {
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	old := h.tenants[t.ID]
	cur := make(map[string]*registryEntry, len(t.RegistryCredentials))
	var resolved []string
	for _, c := range t.RegistryCredentials {
		e := old[c.Host]
		if e == nil || e.cred.Fingerprint != c.Fingerprint || e.cred.Username != c.Username ||
			e.cred.CheckImage != c.CheckImage || !e.cred.ExpiresAt.Equal(c.ExpiresAt) {
			if e != nil {
				resolved = append(resolved, c.Host)
			}
			e = &registryEntry{state: broker.RegistryPending, nextCheck: now}
		}
		e.cred = c
		cur[c.Host] = e
	}
	for host := range old {
		if cur[host] == nil {
			resolved = append(resolved, host)
		}
	}
	if len(cur) == 0 {
		delete(h.tenants, t.ID)
	} else {
		h.tenants[t.ID] = cur
	}
	h.mu.Unlock()
	for _, host := range resolved {
		h.cfg.Notifier.ResolveAll(ctx, registryConditions(t.ID, host), "the credential for "+host+" was replaced or removed")
	}
}

// forget stops watching a tenant that is gone.
func (h *Monitor) forget(ctx context.Context, tenantID string) {
	h.mu.Lock()
	hosts := slices.Collect(maps.Keys(h.tenants[tenantID]))
	delete(h.tenants, tenantID)
	h.mu.Unlock()
	for _, host := range hosts {
		h.cfg.Notifier.ResolveAll(ctx, registryConditions(tenantID, host), "the tenant was removed")
	}
}

// warnExpiring raises the expiry warnings whose thresholds have passed;
// the Notifier raises each once.
func (h *Monitor) warnExpiring(ctx context.Context) {
	now := h.cfg.Clock.Now()
	var events []broker.Event
	h.mu.Lock()
	for id, entries := range h.tenants {
		for _, e := range entries {
			if ev, ok := registryExpiryEvent(id, e.cred, h.cfg.Warnings, now); ok {
				events = append(events, ev)
			}
		}
	}
	h.mu.Unlock()
	for _, ev := range events {
		h.raise(ctx, ev)
	}
}

// checkDue runs the checks that are due, a few at a time, and waits for
// them. No lock is held while a registry is asked.
func (h *Monitor) checkDue(ctx context.Context) {
	type job struct {
		tenantID string
		cred     broker.RegistryCredential
	}
	now := h.cfg.Clock.Now()
	var jobs []job
	h.mu.Lock()
	for id, entries := range h.tenants {
		for _, e := range entries {
			if !e.nextCheck.After(now) {
				jobs = append(jobs, job{id, e.cred})
			}
		}
	}
	h.mu.Unlock()
	slots := make(chan struct{}, registryCheckWorkers)
	var wg sync.WaitGroup
	for _, j := range jobs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			h.check(ctx, j.tenantID, j.cred)
		})
	}
	wg.Wait()
}

// check asks the registry about one credential and records the answer.
func (h *Monitor) check(ctx context.Context, tenantID string, c broker.RegistryCredential) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	err := h.ask(ctx, tenantID, c)
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	e := h.tenants[tenantID][c.Host]
	if e == nil || e.cred.Fingerprint != c.Fingerprint { // removed or rotated meanwhile
		h.mu.Unlock()
		return
	}
	e.lastCheck, e.nextCheck = now, now.Add(h.cfg.Interval)
	e.state, e.err = broker.RegistryHealthy, nil
	if err != nil {
		e.state, e.err = broker.RegistryFailing, &broker.CredentialError{Reason: broker.ReasonOf(err), Message: err.Error(), Time: now}
	}
	h.mu.Unlock()
	if err != nil {
		h.log.WarnContext(ctx, "registry check failed", slog.String("tenant", tenantID), slog.Any("credential", c), slog.Any("error", err))
		h.raise(ctx, registryCheckEvent(tenantID, c, err))
		return
	}
	h.cfg.Notifier.Resolve(ctx, registryCheckCondition(tenantID, c.Host), "the credential for "+c.Host+" passes its health check again")
}

// ask is the check itself: a manifest HEAD of the check image, or a login.
func (h *Monitor) ask(ctx context.Context, tenantID string, c broker.RegistryCredential) error {
	password, err := h.registry.Secrets().RegistryPassword(tenantID, c)
	if err != nil {
		return &broker.ReasonError{Cause: broker.ReasonDecryptionFailed, Msg: "the stored credential cannot be used", Err: err}
	}
	cred := broker.Credential{Username: c.Username, Token: password, ExpiresAt: c.ExpiresAt}
	if c.CheckImage != "" {
		return h.checker.Probe(ctx, cred, c.CheckImage)
	}
	return h.checker.Login(ctx, cred, c.Host)
}

func (h *Monitor) raise(ctx context.Context, ev broker.Event) {
	if h.cfg.Notifier.Raise(ctx, ev) && h.cfg.Reporter != nil {
		h.cfg.Reporter.Report(ev.TenantID, ev.Reason, ev.Message)
	}
}

// nextWake is the next check, scan or expiry threshold.
func (h *Monitor) nextWake() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	now, next := h.cfg.Clock.Now(), h.scanAt
	for _, entries := range h.tenants {
		for _, e := range entries {
			next = minTime(next, e.nextCheck)
			if e.cred.ExpiresAt.IsZero() {
				continue
			}
			for _, before := range h.cfg.Warnings {
				if at := e.cred.ExpiresAt.Add(-before); at.After(now) {
					next = minTime(next, at)
				}
			}
		}
	}
	return next
}

// Status returns a tenant's registry credentials as last checked, by host;
// nil (and safe) on a nil Monitor.
func (h *Monitor) Status(tenantID string) []broker.RegistryStatus {
	if h == nil {
		return nil
	}
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []broker.RegistryStatus
	for _, host := range slices.Sorted(maps.Keys(h.tenants[tenantID])) {
		e := h.tenants[tenantID][host]
		st := broker.RegistryStatus{Host: e.cred.Host, Username: e.cred.Username, Fingerprint: e.cred.Fingerprint,
			CheckImage: e.cred.CheckImage, ExpiresAt: e.cred.ExpiresAt,
			State: e.state, LastCheck: e.lastCheck, NextCheck: e.nextCheck, Error: e.err}
		if !st.ExpiresAt.IsZero() && !now.Before(st.ExpiresAt) {
			st.State = broker.RegistryExpired
		}
		out = append(out, st)
	}
	return out
}
