package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// describePermissions renders permissions as "packages: read, metadata: read".
func describePermissions(perms map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(perms)) {
		parts = append(parts, name+": "+perms[name])
	}
	return strings.Join(parts, ", ")
}

// credentialChanged reports whether an update touches what verify checks.
func credentialChanged(cur, next Tenant) bool {
	if cur.Owner != next.Owner || (cur.App == nil) != (next.App == nil) || (next.PAT != nil && next.PAT.Token != "") {
		return true
	}
	return next.App != nil && (next.App.InstallationID != cur.App.InstallationID ||
		!maps.Equal(next.App.Permissions, cur.App.Permissions))
}

// verify asks GitHub whether the tenant's credential belongs to its owner.
// Owners are matched by numeric id and type: logins change on a rename and
// can be reused, ids never. The owner's login is then set to the one
// GitHub gives the account now, which the image ownership rules follow.
// An App installation must be on the owner's account, not suspended, and
// hold the permissions the tenant asks for. A PAT must be valid with a
// packages scope; for a user owner it must be that user's. For an
// organization owner the PAT is a machine user's, whose membership a
// read:packages PAT cannot show: the pull probe proves its access instead.
func (r *Tenants) verify(ctx context.Context, t *Tenant, token string) error {
	if r.github == nil {
		return nil
	}
	switch {
	case t.App != nil:
		inst, err := r.github.Installation(ctx, t.App.InstallationID)
		if err != nil {
			return &ReasonError{Msg: fmt.Sprintf("check installation %d", t.App.InstallationID), Err: err}
		}
		a := inst.Account
		if a.ID != t.Owner.ID || a.Type != t.Owner.Type {
			return &ReasonError{Cause: ReasonOwnerMismatch, Msg: fmt.Sprintf(
				"installation %d is on %s %s (id %d), not on the tenant's owner %s %s (id %d)",
				inst.ID, a.Type, a.Login, a.ID, t.Owner.Type, t.Owner.Login, t.Owner.ID)}
		}
		t.Owner.Login = a.Login
		if inst.Suspended {
			return &ReasonError{Cause: ReasonInstallationSuspended, Msg: fmt.Sprintf("installation %d is suspended", inst.ID)}
		}
		for name, level := range t.App.Permissions {
			if permissionLevels[level] > permissionLevels[inst.Permissions[name]] {
				return &ReasonError{Cause: ReasonMissingScope, Msg: fmt.Sprintf(
					"installation %d grants %s: %q, the tenant asks for %q", inst.ID, name, inst.Permissions[name], level)}
			}
		}
	case t.PAT != nil:
		owner, err := r.github.ValidatePAT(ctx, token)
		if err != nil {
			return &ReasonError{Msg: "check PAT", Err: err}
		}
		if t.Owner.Type == OwnerUser && owner.Owner.ID != t.Owner.ID {
			return &ReasonError{Cause: ReasonOwnerMismatch, Msg: fmt.Sprintf(
				"the PAT belongs to %s (id %d), not to the tenant's owner %s (id %d)",
				owner.Owner.Login, owner.Owner.ID, t.Owner.Login, t.Owner.ID)}
		}
		if t.Owner.Type == OwnerUser {
			t.Owner.Login = owner.Owner.Login
		}
	}
	return nil
}

var permissionLevels = map[string]int{"read": 1, "write": 2, "admin": 3}
