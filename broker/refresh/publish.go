package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// probeJob is a credential waiting to be proved on its tenant's probe image
// before it is published; held is what the tenant holds meanwhile.
type probeJob struct {
	tenant broker.Tenant
	cred   broker.Credential
	held   broker.Credential
}

// deliver publishes cred to t, after a successful probe when t has a probe
// image and cred is of another kind or owner than what t holds (or a probe
// was asked for). Probes run apart, so a registry that hangs delays its
// own tenant only.
func (r *Refresher) deliver(ctx context.Context, t broker.Tenant, cred broker.Credential, force bool) {
	r.mu.Lock()
	ts := r.tenants[t.ID]
	if ts == nil {
		r.mu.Unlock()
		return
	}
	held := ts.published
	force = force || ts.probeWanted
	probe := t.ProbeImage != "" && r.cfg.Prober != nil &&
		(force || held.Token == "" || held.Kind != cred.Kind || held.Username != cred.Username || ts.publishedOwner != t.Owner.ID)
	if probe {
		ts.probeWanted = false
		r.queueProbeLocked(ctx, ts, probeJob{tenant: t, cred: cred, held: held})
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.publish(ctx, t, cred)
}

// publish hands t's pull-Secret payload (cred and t's registry entries) to
// the Sink and records what t holds.
func (r *Refresher) publish(ctx context.Context, t broker.Tenant, cred broker.Credential) {
	auths, err := r.registry.Secrets().RegistryAuths(t)
	if err != nil {
		r.log.WarnContext(ctx, "a registry credential is left out of the pull Secrets", slog.String("tenant", t.ID), slog.Any("error", err))
	}
	payload := broker.SecretPayload{Credential: cred, Registries: t.Registries, RegistryAuths: auths}
	if err := r.sink.Publish(ctx, t, payload); err != nil {
		r.log.WarnContext(ctx, "publish failed", slog.String("tenant", t.ID), slog.Any("error", err))
		return
	}
	r.mu.Lock()
	if ts := r.tenants[t.ID]; ts != nil {
		ts.published, ts.publishedOwner = cred, t.Owner.ID
	}
	r.mu.Unlock()
	if err := r.cfg.Publications.Put(ctx, t, cred); err != nil {
		// The Secrets hold it; the provider answers from the last publication
		// (or "not ready") until the next publish.
		r.log.WarnContext(ctx, "store the publication for the credential provider", slog.String("tenant", t.ID), slog.Any("error", err))
	}
	r.cfg.Metrics.Published(t.ID, cred.ExpiresAt)
	r.log.InfoContext(ctx, "credential published", slog.String("tenant", t.ID), slog.Any("credential", cred))
}

// queueProbeLocked makes job the tenant's next probe, and starts the
// tenant's prober unless one runs: it takes the newest job when it is
// through with the current one, so a tenant has one probe in flight.
func (r *Refresher) queueProbeLocked(ctx context.Context, ts *tenantState, job probeJob) {
	ts.probeNext = &job
	ts.probeAt = time.Time{} // a failure sets the next try
	if ts.probeDone != nil {
		return
	}
	done := make(chan struct{})
	ts.probeDone = done
	ctx = r.detachedLocked(ctx)
	r.probing.Add(1)
	go func() {
		defer r.probing.Done()
		defer close(done)
		for {
			job, ok := r.nextProbe(job.tenant.ID, done)
			if !ok {
				return
			}
			r.runProbe(ctx, job)
		}
	}()
}

// nextProbe takes the tenant's waiting probe, or, when none waits, ends
// the tenant's prober.
func (r *Refresher) nextProbe(tenantID string, done chan struct{}) (probeJob, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.tenants[tenantID]
	if ts == nil || ts.probeNext == nil {
		if ts != nil && ts.probeDone == done {
			ts.probeDone = nil
		}
		return probeJob{}, false
	}
	job := *ts.probeNext
	ts.probeNext = nil
	return job, true
}

// runProbe proves a job's credential within ProbeTimeout, in one of the
// ProbeWorkers slots, and publishes it if it pulls and is still the
// tenant's to publish.
func (r *Refresher) runProbe(ctx context.Context, job probeJob) {
	t := job.tenant
	select {
	case r.probeSlots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
	err := r.probe(pctx, t, job.cred)
	cancel()
	<-r.probeSlots
	if ctx.Err() != nil {
		return // this replica stopped refreshing: its verdict is not wanted
	}
	r.cfg.Metrics.Probed(err)
	r.recordProbe(t.ID, t.ProbeImage, err)
	if err != nil {
		r.probeFailed(ctx, t, job.held, err)
		return
	}
	r.notifier.Resolve(ctx, probeCondition(t.ID), "the credential pulls "+t.ProbeImage)
	r.mu.Lock()
	ts := r.tenants[t.ID]
	// A newer delivery waits for its own probe, or the tenant moved to
	// another credential meanwhile: this one is no longer the tenant's.
	current := ts != nil && ts.probeNext == nil && r.keys[ts.key] != nil && r.keys[ts.key].cred.Token == job.cred.Token
	r.mu.Unlock()
	if current {
		r.publish(ctx, t, job.cred)
	}
}

// waitProbes waits until the tenant has no probe in flight, or ctx is done.
func (r *Refresher) waitProbes(ctx context.Context, tenantID string) {
	r.mu.Lock()
	var done chan struct{}
	if ts := r.tenants[tenantID]; ts != nil {
		done = ts.probeDone
	}
	r.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// probe proves cred on t's probe image, but only on an image t may run: a
// tenant stored before its probe image was held to its own rules must not
// send the credential to a registry or owner of its choosing.
func (r *Refresher) probe(ctx context.Context, t broker.Tenant, cred broker.Credential) error {
	if v := broker.ValidateImage(t, t.ProbeImage); !v.Allowed {
		return fmt.Errorf("probe image %s is not the tenant's to pull, so the credential was not sent: %s", t.ProbeImage, v.Message)
	}
	_, err := guarded(ctx, r.log, "probing "+t.ProbeImage, func() (struct{}, error) { return struct{}{}, r.cfg.Prober.Probe(ctx, cred, t.ProbeImage) })
	return err
}

func (r *Refresher) recordProbe(tenantID, image string, err error) {
	res := &broker.ProbeResult{Image: image, Pulls: err == nil, Time: r.now()}
	if err != nil {
		res.Error = &broker.CredentialError{Reason: broker.ReasonOf(err), Message: err.Error(), Time: res.Time}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts := r.tenants[tenantID]; ts != nil {
		ts.probe = res
	}
}

// probeFailed keeps what t holds, schedules another probe and tells t's owner.
func (r *Refresher) probeFailed(ctx context.Context, t broker.Tenant, held broker.Credential, err error) {
	r.mu.Lock()
	if ts := r.tenants[t.ID]; ts != nil {
		ts.probeAt = r.now().Add(r.cfg.ProbeRetry)
	}
	r.mu.Unlock()
	r.log.WarnContext(ctx, "probe failed", slog.String("tenant", t.ID), slog.String("image", t.ProbeImage),
		slog.String("reason", string(broker.ReasonOf(err))), slog.Any("error", err))
	r.raise(ctx, probeEvent(t, held, err))
}

// retryProbe proves the credential of a tenant whose last probe failed again.
func (r *Refresher) retryProbe(ctx context.Context, id string) {
	r.mu.Lock()
	ts := r.tenants[id]
	var t broker.Tenant
	var cred broker.Credential
	if ts != nil && r.keys[ts.key] != nil {
		t, cred = ts.tenant, r.keys[ts.key].cred
	}
	r.mu.Unlock()
	if cred.Token != "" {
		r.deliver(ctx, t, cred, true)
	}
}
