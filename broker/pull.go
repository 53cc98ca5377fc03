package broker

import (
	"fmt"
	"time"
)

// PodIdentity is who a Pod-bound ServiceAccount token speaks for, as the
// API server vouched.
type PodIdentity struct {
	Namespace      string
	ServiceAccount string
	Pod            string
	PodUID         string
	Node           string
}

// ExchangeDenial is why an exchange handed out nothing. The values are the
// API's ExchangeDenial names without the EXCHANGE_DENIAL_ prefix.
type ExchangeDenial string

// DeniedError is an exchange that handed out nothing, and why. The message
// names the namespace, image and tenant asked about, never another tenant.
type DeniedError struct {
	Denial   ExchangeDenial
	TenantID string // "" when no tenant holds the namespace
	Msg      string
}

func (e *DeniedError) Error() string { return e.Msg }

func Denied(d ExchangeDenial, tenantID, format string, args ...any) *DeniedError {
	return &DeniedError{Denial: d, TenantID: tenantID, Msg: fmt.Sprintf(format, args...)}
}

// PullGrant is a credential handed to a kubelet for one image: the
// credential that belongs to the image's registry host, as the pull Secret
// would carry it for that host.
type PullGrant struct {
	TenantID string
	// Credential is the tenant's GitHub credential for a GitHub registry of
	// the tenant's, or its registry credential for Host (Kind empty).
	Credential  Credential
	Fingerprint string // the credential's
	// Host is the registry the credential belongs to and goes to: the
	// image's.
	Host string
	// Prefix is "<registry>/<owner>" of the image, or "<mirror
	// prefix>/<owner>" through a path-style mirror: the only images the
	// kubelet will use the credential for.
	Prefix string
	// CacheFor is how long the kubelet may reuse the grant.
	CacheFor time.Duration
}

// Defaults of an Exchanger.
const (
	// DefaultProviderCache bounds how long a kubelet reuses a grant, so that
	// a revocation or a tenant's removal reaches the nodes in that time.
	DefaultProviderCache = 10 * time.Minute
	// ExpiryMargin is kept between a grant's cache end and its credential's
	// expiry, for the pull that starts just before the end.
	ExpiryMargin = time.Minute
	// DenialsBeforeEvent denials of one tenant's Pods in one namespace
	// within DenialWindow raise PULL_DENIED: one is a typo being fixed,
	// several are Pods that cannot start.
	DenialsBeforeEvent = 3
	DenialWindow       = time.Minute
	MaxDenialKeys      = 10000
)

// Exchange denials.
const (
	DenyTokenRejected      ExchangeDenial = "TOKEN_REJECTED"
	DenyTokenNotPodBound   ExchangeDenial = "TOKEN_NOT_POD_BOUND"
	DenyNamespaceNotBound  ExchangeDenial = "NAMESPACE_NOT_BOUND"
	DenyImageNotAllowed    ExchangeDenial = "IMAGE_NOT_ALLOWED"
	DenyPullModeSecret     ExchangeDenial = "PULL_MODE_SECRET" // not a failure: the plugin answers "no credential"
	DenyCredentialNotReady ExchangeDenial = "CREDENTIAL_NOT_READY"
	DenyPublicImage        ExchangeDenial = "PUBLIC_IMAGE" // not a failure: pulled without a credential
	// DenyNoRegistryCredential is an image the tenant may run on a host
	// that is none of its GitHub registries and for which it has no
	// registry credential of its own (a mirror, say): the GitHub token goes
	// to GitHub's registries only.
	DenyNoRegistryCredential ExchangeDenial = "NO_REGISTRY_CREDENTIAL"
)
