package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Prober proves that a credential pulls an image, or says why it does not.
type Prober interface {
	Probe(ctx context.Context, cred Credential, image string) error
}

// ProbeResult is the outcome of a tenant's last pull probe.
type ProbeResult struct {
	Image string
	Pulls bool
	Error *CredentialError
	Time  time.Time
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
		err := r.probe(ctx, t, cred)
		r.cfg.Metrics.probed(err)
		r.recordProbe(t.ID, t.ProbeImage, err)
		if err != nil {
			r.probeFailed(ctx, t, held, err)
			return
		}
		r.notifier.Resolve(ctx, probeCondition(t.ID), "the credential pulls "+t.ProbeImage)
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

// probe proves cred on t's probe image, but only on an image t may run: a
// tenant stored before its probe image was held to its own rules must not
// send the credential to a registry or owner of its choosing.
func (r *Refresher) probe(ctx context.Context, t Tenant, cred Credential) error {
	if v := ValidateImage(t, t.ProbeImage); !v.Allowed {
		return fmt.Errorf("probe image %s is not the tenant's to pull, so the credential was not sent: %s", t.ProbeImage, v.Message)
	}
	return r.cfg.Prober.Probe(ctx, cred, t.ProbeImage)
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

// probeFailed keeps what t holds, schedules another probe and tells t's owner.
func (r *Refresher) probeFailed(ctx context.Context, t Tenant, held Credential, err error) {
	r.mu.Lock()
	if ts := r.tenants[t.ID]; ts != nil {
		ts.probeAt = r.now().Add(r.cfg.ProbeRetry)
	}
	r.mu.Unlock()
	r.log.WarnContext(ctx, "probe failed", slog.String("tenant", t.ID), slog.String("image", t.ProbeImage),
		slog.String("reason", string(ReasonOf(err))), slog.Any("error", err))
	r.raise(ctx, probeEvent(t, held, err))
}

// retryProbe proves the credential of a tenant whose last probe failed again.
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
