package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// storedCredential is what a CredentialStore holds for a key, sealed.
type storedCredential struct {
	Credential broker.Credential `json:"credential"`
	Validated  time.Time         `json:"validated"`
}

// credentialAD binds a sealed credential to its key: one copied under
// another key does not open.
func credentialAD(key string) []byte { return []byte("credbroker/credentials/" + key) }

func (r *Refresher) persists() bool { return r.cfg.Credentials != nil && r.cfg.Sealer != nil }

// store keeps cred for key so that a restart can reuse it. Failing to store
// costs a mint after a restart, nothing more: it is logged, not fatal.
func (r *Refresher) store(ctx context.Context, key string, cred broker.Credential, validated time.Time) {
	if !r.persists() {
		return
	}
	plain, err := json.Marshal(storedCredential{Credential: cred, Validated: validated})
	if err == nil {
		var sealed []byte
		if sealed, err = r.cfg.Sealer.SealAs(credentialAD(key), string(plain)); err == nil {
			err = r.cfg.Credentials.PutCredential(ctx, key, sealed)
		}
	}
	if err != nil {
		r.log.WarnContext(ctx, "store credential", slog.String("key", key), slog.Any("error", err))
	}
}

// loadStored starts a new key from its stored credential when that is
// still good: not expired, and for an App token not yet due for renewal.
func (r *Refresher) loadStored(ctx context.Context, key string) {
	if !r.persists() {
		return
	}
	sealed, err := r.cfg.Credentials.GetCredential(ctx, key)
	if errors.Is(err, broker.ErrNotFound) {
		return
	}
	var rec storedCredential
	if err == nil {
		var plain string
		if plain, err = r.cfg.Sealer.OpenAs(credentialAD(key), sealed); err == nil {
			err = json.Unmarshal([]byte(plain), &rec)
		}
	}
	if err != nil {
		r.log.WarnContext(ctx, "load stored credential; obtaining a new one", slog.String("key", key), slog.Any("error", err))
		return
	}
	cred := rec.Credential
	due := r.timing.due(cred, rec.Validated)
	now := r.now()
	if !due.After(now) || (!cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt)) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ks := r.keys[key]; ks != nil && ks.cred.Token == "" {
		ks.cred, ks.lastRefresh, ks.due = cred, rec.Validated, due
	}
}

// forgetStored deletes the stored credential of a key no tenant uses.
func (r *Refresher) forgetStored(ctx context.Context, key string) {
	if !r.persists() {
		return
	}
	if err := r.cfg.Credentials.DeleteCredential(ctx, key); err != nil && !errors.Is(err, broker.ErrNotFound) {
		r.log.WarnContext(ctx, "delete stored credential", slog.String("key", key), slog.Any("error", err))
	}
}
