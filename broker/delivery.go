package broker

import "time"

// InstallationChange is what GitHub's installation webhook says happened.
type InstallationChange string

// Delivery is a GitHub webhook delivery the broker acts on: what happened
// to an installation, under GitHub's delivery id (X-GitHub-Delivery).
type Delivery struct {
	ID string `json:"id"`
	// Digest is "sha256:" and the hex SHA-256 of the signed body. The
	// signature covers the body and not the delivery id, so a captured
	// body sent again under a fresh id is the same delivery: the Inbox
	// keys on the digest (Key).
	Digest         string             `json:"digest,omitempty"`
	InstallationID int64              `json:"installationId"`
	Change         InstallationChange `json:"change"`
	// Account is the installation's account as the delivery names it: on
	// a rename, its new login under the same numeric id.
	Account  Owner     `json:"account"`
	Received time.Time `json:"received"`
}

// Key is what the Inbox tells deliveries apart by: the signed body's
// digest, or the delivery id for a delivery stored without one (by a
// release before digests). GitHub's redelivery sends the same body under
// the same id, so the digest catches it as the id did; a replay under a
// made-up id is caught by the digest alone.
func (d Delivery) Key() string {
	if d.Digest != "" {
		return d.Digest
	}
	return d.ID
}

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
