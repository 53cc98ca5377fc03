package refresh

import (
	"context"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// DefaultRevokeGrace is how long a superseded token stays valid: the kubelet
// may be pulling with the Secret it read a moment ago, and a fan-out to
// thousands of namespaces takes a minute.
const DefaultRevokeGrace = 5 * time.Minute

// retiredToken is an App token no tenant should hold any more, revoked at
// GitHub once its grace has passed.
type retiredToken struct {
	cred broker.Credential
	at   time.Time
}

// retire schedules the revocation of an App token that a newer one
// superseded, or that no tenant uses any more. An App token otherwise stays
// valid for up to an hour: whoever copied it out of a Secret could keep
// pulling with it.
func (r *Refresher) retire(old broker.Credential, now time.Time) {
	if r.cfg.Revoker == nil || old.Kind != broker.KindGitHubApp || old.Token == "" || !now.Before(old.ExpiresAt) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retired = append(r.retired, retiredToken{cred: old, at: now.Add(r.cfg.RevokeGrace)})
}

// revokeDue revokes the retired tokens whose grace has passed. Revocation
// is best effort: a failure is counted and logged, and the token expires
// within the hour anyway.
func (r *Refresher) revokeDue(ctx context.Context) {
	now := r.now()
	var due []broker.Credential
	r.mu.Lock()
	kept := r.retired[:0]
	for _, rt := range r.retired {
		if rt.at.After(now) {
			kept = append(kept, rt)
		} else if now.Before(rt.cred.ExpiresAt) {
			due = append(due, rt.cred)
		}
	}
	r.retired = kept
	r.mu.Unlock()
	for _, cred := range due {
		_, err := guarded(ctx, r.log, "revoking a token", func() (struct{}, error) { return struct{}{}, r.cfg.Revoker.RevokeInstallationToken(ctx, cred.Token) })
		r.cfg.Metrics.Revoked(err)
		if err != nil {
			r.log.WarnContext(ctx, "revoke superseded token", slog.Any("credential", cred), slog.Any("error", err))
			continue
		}
		r.log.InfoContext(ctx, "superseded token revoked", slog.Any("credential", cred))
	}
}
