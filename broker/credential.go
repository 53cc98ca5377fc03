package broker

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Reason is the stable, machine-readable cause of a credential problem. The
// values are the API's Reason enum names without the REASON_ prefix, and are
// what notifications and statuses carry.
type Reason string

// Reasons.
const (
	ReasonTokenRevoked           Reason = "TOKEN_REVOKED"
	ReasonMissingScope           Reason = "MISSING_SCOPE"
	ReasonInstallationNotFound   Reason = "INSTALLATION_NOT_FOUND"
	ReasonInstallationSuspended  Reason = "INSTALLATION_SUSPENDED"
	ReasonRateLimited            Reason = "RATE_LIMITED"
	ReasonGitHubUnavailable      Reason = "GITHUB_UNAVAILABLE"
	ReasonOwnerMismatch          Reason = "OWNER_MISMATCH"
	ReasonFineGrainedPAT         Reason = "FINE_GRAINED_PAT"
	ReasonAppTokenNotAccepted    Reason = "APP_TOKEN_NOT_ACCEPTED"
	ReasonNoPackageAccess        Reason = "NO_PACKAGE_ACCESS"
	ReasonRegistryUnreachable    Reason = "REGISTRY_UNREACHABLE"
	ReasonAppCredentialsRejected Reason = "APP_CREDENTIALS_REJECTED"
	ReasonImageNotFound          Reason = "IMAGE_NOT_FOUND"
	ReasonSecretConflict         Reason = "SECRET_CONFLICT"
	ReasonSyncFailed             Reason = "SYNC_FAILED"
	ReasonNamespaceClaimed       Reason = "NAMESPACE_CLAIMED"
	// ReasonDecryptionFailed: a sealed secret does not open with the configured key.
	ReasonDecryptionFailed Reason = "DECRYPTION_FAILED"
)

// ReasonOf returns the Reason carried by err or anything it wraps, or "".
func ReasonOf(err error) Reason {
	var r interface{ Reason() Reason }
	if errors.As(err, &r) {
		return r.Reason()
	}
	return ""
}

// RetryAfterOf returns how long err asks the caller to wait before trying
// again (a rate limit's reset), or 0.
func RetryAfterOf(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}

// CredentialKind is where a credential came from.
type CredentialKind string

// Credential kinds.
const (
	KindGitHubApp CredentialKind = "github_app"
	KindPAT       CredentialKind = "pat"
)

// AppTokenUsername is the registry username of a GitHub App installation token.
const AppTokenUsername = "x-access-token"

// Credential is a registry login: a username and a token that expires (or,
// for a PAT without expiry, does not: ExpiresAt is zero).
type Credential struct {
	Kind      CredentialKind
	Username  string
	Token     string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Permissions GitHub granted an App token, e.g. {"packages": "read"}.
	Permissions map[string]string
}

// Fingerprint identifies the credential without revealing it.
func (c Credential) Fingerprint() string { return Fingerprint(c.Token) }

// LogValue keeps the token out of logs.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", string(c.Kind)),
		slog.String("username", c.Username),
		slog.String("fingerprint", c.Fingerprint()),
		slog.Time("expiresAt", c.ExpiresAt),
	)
}

// String keeps the token out of fmt output.
func (c Credential) String() string {
	return "Credential(" + string(c.Kind) + " " + c.Username + " " + c.Fingerprint() + ")"
}

// GoString keeps the token out of %#v output.
func (c Credential) GoString() string { return c.String() }

// Installation is a GitHub App installation as GitHub reports it.
type Installation struct {
	ID          int64
	Account     Owner
	Suspended   bool
	Permissions map[string]string
}

// PATOwner is what GitHub says about a classic PAT: whose it is, its scopes
// and when it expires (zero: never).
type PATOwner struct {
	Owner     Owner
	Scopes    []string
	ExpiresAt time.Time
}

// RegistryAuth is one more registry's entry of a pull Secret, such as an
// in-cluster registry's robot.
type RegistryAuth struct {
	Host, Username, Password string
}

// LogValue keeps the password out of logs, as Credential's does.
func (a RegistryAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", a.Host), slog.String("username", a.Username), slog.String("fingerprint", Fingerprint(a.Password)))
}

// String keeps the password out of fmt output.
func (a RegistryAuth) String() string {
	return "RegistryAuth(" + a.Host + " " + a.Username + " " + Fingerprint(a.Password) + ")"
}

// GoString keeps the password out of %#v output.
func (a RegistryAuth) GoString() string { return a.String() }

// DockerConfigJSON renders the .dockerconfigjson of a kubernetes.io/
// dockerconfigjson Secret: cred for every registry, and the more entries.
// Equal input gives equal bytes (encoding/json sorts map keys), so a
// rendered Secret can be compared byte for byte.
func DockerConfigJSON(registries []string, cred Credential, more ...RegistryAuth) []byte {
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	auth := base64.StdEncoding.EncodeToString([]byte(cred.Username + ":" + cred.Token))
	auths := make(map[string]entry, len(registries))
	for _, r := range registries {
		auths[r] = entry{Username: cred.Username, Password: cred.Token, Auth: auth}
	}
	for _, m := range more {
		auths[m.Host] = entry{Username: m.Username, Password: m.Password, Auth: base64.StdEncoding.EncodeToString([]byte(m.Username + ":" + m.Password))}
	}
	out, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		panic("broker: marshal dockerconfigjson: " + err.Error()) // strings only; cannot fail
	}
	return out
}

// Permanent reports whether only a person can fix a failure: retrying soon
// would not help, and hammering GitHub about it would.
func Permanent(reason Reason) bool {
	switch reason {
	case ReasonTokenRevoked, ReasonMissingScope, ReasonInstallationNotFound, ReasonInstallationSuspended,
		ReasonOwnerMismatch, ReasonFineGrainedPAT, ReasonAppCredentialsRejected:
		return true
	}
	return false
}

// ReasonError is an error that carries its Reason (Cause), or wraps the
// error that does: a tenant whose credential GitHub does not back (it
// belongs to someone else, is revoked, lacks a scope, or its installation
// is gone or suspended), a namespace another tenant claims, a stored
// credential that cannot be opened.
type ReasonError struct {
	Cause Reason
	Msg   string
	Err   error
}

func (e *ReasonError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *ReasonError) Unwrap() error { return e.Err }

// Reason implements the interface ReasonOf looks for.
func (e *ReasonError) Reason() Reason {
	if e.Cause != "" {
		return e.Cause
	}
	return ReasonOf(e.Err)
}

// Fingerprint identifies a secret without revealing it: the first 12 hex
// digits of its SHA-256.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}
