package broker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
)

// InstallationChange is what GitHub's installation webhook says happened.
type InstallationChange string

// Installation changes.
const (
	InstallationSuspended          InstallationChange = "suspend"
	InstallationUnsuspended        InstallationChange = "unsuspend"
	InstallationDeleted            InstallationChange = "deleted"
	InstallationPermissionsChanged InstallationChange = "new_permissions_accepted"
	// AccountRenamed is installation_target's "renamed": the account of an
	// installation has a new login (Delivery.Account), same id.
	AccountRenamed InstallationChange = "renamed"
)

// Act acts on a GitHub delivery taken from the Inbox.
func (r *Refresher) Act(ctx context.Context, d Delivery) {
	if d.Change != AccountRenamed {
		r.InstallationChanged(ctx, d.InstallationID, d.Change)
		return
	}
	renamed, err := r.registry.RenameOwner(ctx, d.Account)
	if err != nil {
		r.log.WarnContext(ctx, "account rename", slog.String("login", d.Account.Login), slog.Any("error", err))
		return
	}
	r.log.InfoContext(ctx, "account renamed", slog.Int64("account", d.Account.ID), slog.String("login", d.Account.Login), slog.Any("tenants", renamed))
}

// InstallationChanged acts on GitHub's word about an installation at once:
// a suspended or deleted installation stops its renewals (retried hourly,
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
