package broker

import (
	"log/slog"
	"maps"
	"slices"
	"time"
)

// Defaults applied to a tenant that leaves the field empty.
const (
	DefaultRegistry   = "ghcr.io"
	DefaultSecretName = "ghcr-secret"
)

// DefaultAppPermissions is the least privilege a registry pull needs.
func DefaultAppPermissions() map[string]string { return map[string]string{"packages": "read"} }

// OwnerType is the kind of GitHub account that owns a tenant's packages.
type OwnerType string

// Owner types, spelled as in the GitHub API's "type" field.
const (
	OwnerUser         OwnerType = "User"
	OwnerOrganization OwnerType = "Organization"
)

// Owner is a GitHub account. The numeric ID is what identifies it: a login
// can be renamed and later taken by someone else.
type Owner struct {
	Login string    `json:"login"`
	ID    int64     `json:"id"`
	Type  OwnerType `json:"type"`
}

// GitHubApp is an App installation whose tokens the tenant uses.
type GitHubApp struct {
	InstallationID int64             `json:"installationID"`
	Permissions    map[string]string `json:"permissions,omitempty"`
	Repositories   []string          `json:"repositories,omitempty"`
}

// PAT is a classic personal access token. Token holds the plaintext only
// between the API and the registry, which seals it; what is stored is Sealed
// (AES-GCM) and Fingerprint.
type PAT struct {
	Token       string `json:"-"`
	Sealed      []byte `json:"sealed,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// LogValue keeps the token out of logs even when a PAT is logged whole.
func (p PAT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fingerprint", p.Fingerprint))
}

// String keeps the token out of fmt output.
func (p PAT) String() string { return "PAT(" + p.Fingerprint + ")" }

// GoString keeps the token out of %#v output.
func (p PAT) GoString() string { return p.String() }

// Tenant is a platform project: one GitHub owner, one credential source,
// and the namespaces that receive its pull Secret.
type Tenant struct {
	ID                   string     `json:"id"`
	Owner                Owner      `json:"owner"`
	App                  *GitHubApp `json:"githubApp,omitempty"`
	PAT                  *PAT       `json:"pat,omitempty"`
	Namespaces           []string   `json:"namespaces,omitempty"`
	NamespaceSelector    string     `json:"namespaceSelector,omitempty"`
	Registries           []string   `json:"registries,omitempty"`
	SecretName           string     `json:"secretName,omitempty"`
	ProbeImage           string     `json:"probeImage,omitempty"`
	AllowedOwners        []string   `json:"allowedOwners,omitempty"`
	PatchServiceAccounts bool       `json:"patchServiceAccounts,omitempty"`
	PullMode             PullMode   `json:"pullMode,omitempty"`
	RegistryPush         bool       `json:"registryPush,omitempty"`
	// RegistryCredentials are the tenant's further registries; sameSpec
	// leaves them out, as they are added apart from the tenant's creation.
	RegistryCredentials []RegistryCredential `json:"registryCredentials,omitempty"`
	CreateTime          time.Time            `json:"createTime"`
	UpdateTime          time.Time            `json:"updateTime"`

	// Version is set by the Store and changes with every write; it is the
	// tenant's etag and the precondition of optimistic updates.
	Version string `json:"-"`
}

// WithDefaults returns t with empty optional fields set to their defaults
// and host names lowercased, so that equal intent compares equal.
func (t Tenant) WithDefaults() Tenant {
	if len(t.Registries) == 0 {
		t.Registries = []string{DefaultRegistry}
	}
	if t.SecretName == "" {
		t.SecretName = DefaultSecretName
	}
	if t.PullMode == "" {
		t.PullMode = PullSecret
	}
	if t.App != nil && len(t.App.Permissions) == 0 {
		app := *t.App
		app.Permissions = DefaultAppPermissions()
		t.App = &app
	}
	return t
}

// sameSpec reports whether a and b ask for the same thing, ignoring
// bookkeeping (times, version) and the PAT, which callers compare apart
// because only one side holds the plaintext.
func sameSpec(a, b Tenant) bool {
	if a.ID != b.ID || a.Owner != b.Owner || a.NamespaceSelector != b.NamespaceSelector ||
		a.SecretName != b.SecretName || a.ProbeImage != b.ProbeImage ||
		a.PatchServiceAccounts != b.PatchServiceAccounts || a.PullMode != b.PullMode || a.RegistryPush != b.RegistryPush ||
		!slices.Equal(a.Namespaces, b.Namespaces) || !slices.Equal(a.Registries, b.Registries) ||
		!slices.Equal(a.AllowedOwners, b.AllowedOwners) ||
		(a.App == nil) != (b.App == nil) || (a.PAT == nil) != (b.PAT == nil) {
		return false
	}
	if a.App == nil {
		return true
	}
	return a.App.InstallationID == b.App.InstallationID &&
		maps.Equal(a.App.Permissions, b.App.Permissions) &&
		slices.Equal(a.App.Repositories, b.App.Repositories)
}

// PullMode is how a tenant's Pods get its credential.
type PullMode string

// Pull modes; a tenant stored before pull modes existed has "", which is
// PullSecret.
const (
	PullSecret   PullMode = "SECRET"   // a pull Secret in every bound namespace
	PullProvider PullMode = "PROVIDER" // the kubelet credential provider, no Secret
	PullBoth     PullMode = "BOTH"     // both, while nodes move to the provider
)

// WantsSecrets reports whether the tenant's namespaces hold its pull Secret.
func (t Tenant) WantsSecrets() bool { return t.PullMode != PullProvider }

// ServesProvider reports whether the credential provider may hand out the
// tenant's credential.
func (t Tenant) ServesProvider() bool { return t.PullMode == PullProvider || t.PullMode == PullBoth }

// ReservedSecretPrefix starts the names of credbroker's own objects (tenant,
// credential, event and audit records): no tenant's pull Secret may take one.
const ReservedSecretPrefix = "credbroker-"
