package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/credbroker/credbroker/broker"
)

// Act acts on a GitHub delivery taken from the Inbox, once GitHub's API has
// confirmed it. A delivery is signed, but the signature does not date it:
// a captured suspend or rename can be sent again long after GitHub's
// state moved on. So a delivery only says which installation to look at;
// what is done follows what GitHub answers now (GET
// /app/installations/{id}): a suspend is acted on only while the
// installation is suspended, a deletion only once it is gone, an
// unsuspend only while it is not suspended, and a rename records the
// login GitHub reports for the account now, never the delivery's. A
// delivery GitHub cannot be asked about (no App, GitHub down) is not acted
// on: a renewal meets a suspension or deletion itself, at the latest at
// the next token.
func (r *Refresher) Act(ctx context.Context, d broker.Delivery) {
	log := r.log.With(slog.String("delivery", d.ID), slog.Int64("installation", d.InstallationID), slog.String("change", string(d.Change)))
	if r.cfg.GitHub == nil || d.InstallationID == 0 {
		log.WarnContext(ctx, "GitHub delivery not acted on: GitHub's API cannot confirm it")
		return
	}
	inst, err := r.cfg.GitHub.Installation(ctx, d.InstallationID)
	gone := broker.ReasonOf(err) == broker.ReasonInstallationNotFound
	if err != nil && !gone {
		log.WarnContext(ctx, "GitHub delivery not acted on: GitHub's API cannot confirm it", slog.Any("error", err))
		return
	}
	change, ok := confirmed(d, inst, gone)
	if !ok {
		log.WarnContext(ctx, "GitHub delivery not acted on: GitHub's API does not confirm it (a replay, or a later change overtook it)",
			slog.Bool("suspended", inst.Suspended), slog.Bool("gone", gone))
		return
	}
	if change != broker.AccountRenamed {
		r.InstallationChanged(ctx, d.InstallationID, change)
		return
	}
	renamed, err := r.registry.RenameOwner(ctx, inst.Account)
	if err != nil {
		log.WarnContext(ctx, "account rename", slog.String("login", inst.Account.Login), slog.Any("error", err))
		return
	}
	log.InfoContext(ctx, "account renamed", slog.Int64("account", inst.Account.ID), slog.String("login", inst.Account.Login), slog.Any("tenants", renamed))
}

// confirmed is the change to act on for d, given the installation as
// GitHub's API reports it now (gone: GitHub answers 404), and whether
// GitHub confirms d at all.
func confirmed(d broker.Delivery, inst broker.Installation, gone bool) (broker.InstallationChange, bool) {
	switch {
	case gone:
		// Whatever the delivery says, the installation is gone now.
		return broker.InstallationDeleted, d.Change == broker.InstallationDeleted || d.Change == broker.InstallationSuspended
	case d.Change == broker.InstallationDeleted:
		return "", false
	case d.Change == broker.InstallationSuspended:
		return d.Change, inst.Suspended
	case d.Change == broker.InstallationUnsuspended, d.Change == broker.InstallationPermissionsChanged:
		return d.Change, !inst.Suspended
	case d.Change == broker.AccountRenamed:
		// The account must be the one the delivery names, under its id;
		// its login is GitHub's word now.
		return d.Change, inst.Account.ID == d.Account.ID && inst.Account.Login != ""
	}
	return "", false
}

// InstallationChanged acts on GitHub's word about an installation at once:
// a suspended or deleted installation fails its keys as a refused renewal
// would (fail), so its tenants' owners are told and each key is tried
// again on the backoff of a failure only a person can fix — 30–60 s at
// first, doubling to 30–60 min (timing.retryWait) — in case the word is
// lost; an unsuspended one, or one with new permissions, is renewed now.
func (r *Refresher) InstallationChanged(ctx context.Context, installationID int64, change broker.InstallationChange) {
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
		case broker.InstallationSuspended:
			r.fail(ctx, key, &broker.ReasonError{Cause: broker.ReasonInstallationSuspended, Msg: fmt.Sprintf("GitHub reports installation %d suspended", installationID)})
		case broker.InstallationDeleted:
			r.fail(ctx, key, &broker.ReasonError{Cause: broker.ReasonInstallationNotFound, Msg: fmt.Sprintf("GitHub reports installation %d deleted", installationID)})
		case broker.InstallationUnsuspended, broker.InstallationPermissionsChanged:
			r.renew(ctx, key, "")
		}
	}
}
