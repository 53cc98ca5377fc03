package exchange

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/notify"

	"k8s.io/utils/clock"
)

// The credential provider exchange: a kubelet about to pull an image for a
// Pod hands credbroker's plugin a ServiceAccount token bound to that Pod;
// the token (vouched for by the API server) names the Pod's namespace,
// the namespace its tenant, the tenant its owner and credential.

// Config tunes an Exchanger; zero fields take their defaults and
// nil collaborators are skipped.
type Config struct {
	MaxCache time.Duration
	// Images has the platform's public scopes: images under them are
	// allowed, and pulled without any tenant's credential.
	Images   broker.ImageRules
	Clock    clock.PassiveClock
	Notifier *notify.Notifier
	Reporter broker.DenialReporter
	Metrics  *broker.Metrics
}

// Exchanger answers the credential provider on any replica, from the
// tenants and publications every replica keeps in memory.
type Exchanger struct {
	owners broker.NamespaceOwners
	pubs   *Publications
	cfg    Config
	log    *slog.Logger

	mu      sync.Mutex
	denials map[broker.ConditionKey]*denialCount
}

type denialCount struct {
	n     int
	since time.Time
	open  bool // PULL_DENIED raised and not resolved
}

// New returns an Exchanger.
func New(owners broker.NamespaceOwners, pubs *Publications, cfg Config, log *slog.Logger) *Exchanger {
	if cfg.MaxCache <= 0 {
		cfg.MaxCache = broker.DefaultProviderCache
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Exchanger{owners: owners, pubs: pubs, cfg: cfg, log: log, denials: map[broker.ConditionKey]*denialCount{}}
}

// Exchange hands pod the credential for image, or says why not. Every
// answer is audited (by fingerprint) in the log.
func (x *Exchanger) Exchange(ctx context.Context, pod broker.PodIdentity, image string) (broker.PullGrant, error) {
	g, err := x.exchange(pod, image)
	x.record(ctx, pod, image, g, err)
	return g, err
}

// Refused audits an exchange refused before it named a Pod: a token the API
// server does not accept, or could not review.
func (x *Exchanger) Refused(ctx context.Context, image string, err error) {
	x.record(ctx, broker.PodIdentity{}, image, broker.PullGrant{}, err)
}

func (x *Exchanger) exchange(pod broker.PodIdentity, image string) (broker.PullGrant, error) {
	if pod.Pod == "" || pod.Namespace == "" {
		return broker.PullGrant{}, broker.Denied(broker.DenyTokenNotPodBound, "", "the ServiceAccount token is bound to no Pod: the kubelet requests one per Pod")
	}
	t, ok, err := x.owners.NamespaceOwner(pod.Namespace)
	if err != nil {
		return broker.PullGrant{}, fmt.Errorf("find the tenant of namespace %s: %w", pod.Namespace, err)
	}
	if !ok {
		return broker.PullGrant{}, broker.Denied(broker.DenyNamespaceNotBound, "", "namespace %s is bound to no tenant", pod.Namespace)
	}
	if !t.ServesProvider() {
		return broker.PullGrant{}, broker.Denied(broker.DenyPullModeSecret, t.ID, "tenant %s pulls with its Secret (pull mode %s), not through the credential provider", t.ID, t.PullMode)
	}
	v := x.cfg.Images.Validate(t, image)
	if !v.Allowed {
		return broker.PullGrant{}, broker.Denied(broker.DenyImageNotAllowed, t.ID, "tenant %s may not pull %s: %s", t.ID, image, v.Message)
	}
	if x.cfg.Images.IsPublic(t, image) {
		return broker.PullGrant{}, broker.Denied(broker.DenyPublicImage, t.ID, "%s", v.Message)
	}
	prefix, host := x.cfg.Images.AuthKey(image)
	if broker.SlicesContainsFold(t.Registries, host) {
		pub, now, err := x.published(t)
		if err != nil {
			return broker.PullGrant{}, err
		}
		return x.grant(t, pub.Credential, pub.fingerprint, host, prefix, now), nil
	}
	return x.registryGrant(t, image, host, prefix)
}

// registryGrant answers an image on a host that is none of t's GitHub
// registries with t's own credential for that host, the one its pull
// Secret carries there: a third-party registry's, or a mirror's. Without
// one the answer is a denial, never the GitHub token (DESIGN.md §17): a
// kubelet asking about that host would send it there.
func (x *Exchanger) registryGrant(t broker.Tenant, image, host, prefix string) (broker.PullGrant, error) {
	c, ok := t.RegistryCredential(host)
	if !ok {
		return broker.PullGrant{}, broker.Denied(broker.DenyNoRegistryCredential, t.ID,
			"tenant %s has no credential for %s, where %s is; its GitHub credential goes only to %s: give the tenant a registry credential for %s, or pull without one",
			t.ID, host, image, strings.Join(t.Registries, ", "), host)
	}
	now := x.cfg.Clock.Now()
	if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
		return broker.PullGrant{}, broker.Denied(broker.DenyCredentialNotReady, t.ID, "tenant %s's credential for %s expired at %s; rotate it",
			t.ID, host, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	password, err := x.pubs.registryPassword(t.ID, c)
	if err != nil {
		return broker.PullGrant{}, err
	}
	cred := broker.Credential{Username: c.Username, Token: password, ExpiresAt: c.ExpiresAt}
	return x.grant(t, cred, broker.Fingerprint(password), host, prefix, now), nil
}

// grant hands cred out for prefix, cached no longer than the maximum nor
// past the credential's expiry less the margin.
func (x *Exchanger) grant(t broker.Tenant, cred broker.Credential, fingerprint, host, prefix string, now time.Time) broker.PullGrant {
	cacheFor := x.cfg.MaxCache
	if !cred.ExpiresAt.IsZero() {
		cacheFor = max(0, min(cacheFor, cred.ExpiresAt.Sub(now)-broker.ExpiryMargin))
	}
	return broker.PullGrant{TenantID: t.ID, Credential: cred, Fingerprint: fingerprint, Host: host, Prefix: prefix, CacheFor: cacheFor.Truncate(time.Second)}
}

// published returns t's published credential if a kubelet may use it now,
// or a CREDENTIAL_NOT_READY denial saying why not.
func (x *Exchanger) published(t broker.Tenant) (publication, time.Time, error) {
	pub, err := x.pubs.open(t.ID)
	if errors.Is(err, errNotPublished) {
		return pub, time.Time{}, broker.Denied(broker.DenyCredentialNotReady, t.ID, "tenant %s has no credential published yet; see its credential status", t.ID)
	}
	if err != nil {
		return pub, time.Time{}, err
	}
	now := x.cfg.Clock.Now()
	switch expires := pub.Credential.ExpiresAt; {
	case pub.OwnerID != t.Owner.ID:
		return pub, now, broker.Denied(broker.DenyCredentialNotReady, t.ID, "tenant %s's credential is not yet proved for its owner %s", t.ID, t.Owner.Login)
	case !expires.IsZero() && !now.Before(expires):
		return pub, now, broker.Denied(broker.DenyCredentialNotReady, t.ID, "tenant %s's credential expired at %s and no new one is published; see its credential status",
			t.ID, expires.UTC().Format(time.RFC3339))
	}
	return pub, now, nil
}

// CredentialReady says whether a Pod of t's would get a credential from
// the provider now: nil when it would, or when t pulls with its Secret (of
// which this replica knows nothing), a CREDENTIAL_NOT_READY denial when it
// would not, another error when the publications are not loaded.
func (x *Exchanger) CredentialReady(t broker.Tenant) error {
	if !t.ServesProvider() {
		return nil
	}
	_, _, err := x.published(t)
	return err
}

// record audits an answer and tells whom a denial concerns.
func (x *Exchanger) record(ctx context.Context, pod broker.PodIdentity, image string, g broker.PullGrant, err error) {
	attrs := []any{slog.String("method", "ExchangeServiceAccountToken"), slog.String("namespace", pod.Namespace),
		slog.String("serviceAccount", pod.ServiceAccount), slog.String("pod", pod.Pod), slog.String("node", pod.Node), slog.String("image", image)}
	var d *broker.DeniedError
	switch {
	case err == nil:
		x.log.InfoContext(ctx, "audit", append(attrs, slog.String("tenant", g.TenantID), slog.String("result", "OK"),
			slog.String("registry", g.Host), slog.String("fingerprint", g.Fingerprint), slog.Duration("cacheFor", g.CacheFor))...)
		x.cfg.Metrics.Exchanged("ok")
		x.granted(ctx, g.TenantID, pod.Namespace)
	case errors.As(err, &d):
		x.log.InfoContext(ctx, "audit", append(attrs, slog.String("tenant", d.TenantID), slog.String("result", string(d.Denial)),
			slog.String("reason", d.Msg))...)
		x.cfg.Metrics.Exchanged(string(d.Denial))
		if d.Denial == broker.DenyPullModeSecret || d.Denial == broker.DenyPublicImage {
			return // nothing wrong: the Pod pulls with its Secret, or anonymously
		}
		if x.cfg.Reporter != nil && pod.Pod != "" {
			x.cfg.Reporter.PullDenied(pod, image, d)
		}
		if d.TenantID != "" {
			x.deniedAgain(ctx, pod.Namespace, d)
		}
	default:
		x.log.WarnContext(ctx, "audit", append(attrs, slog.String("result", "ERROR"), slog.Any("error", err))...)
		x.cfg.Metrics.Exchanged("error")
	}
}

// deniedAgain counts a tenant's denials in a namespace and raises
// PULL_DENIED once they repeat.
func (x *Exchanger) deniedAgain(ctx context.Context, namespace string, d *broker.DeniedError) {
	key := pullDeniedCondition(d.TenantID, namespace)
	now := x.cfg.Clock.Now()
	x.mu.Lock()
	c := x.denials[key]
	if c == nil || now.Sub(c.since) > broker.DenialWindow {
		if len(x.denials) >= broker.MaxDenialKeys { // a flood of namespaces must not grow this without end
			clear(x.denials)
		}
		open := c != nil && c.open
		c = &denialCount{since: now, open: open}
		x.denials[key] = c
	}
	c.n++
	raise := c.n == broker.DenialsBeforeEvent && !c.open
	if raise {
		c.open = true
	}
	x.mu.Unlock()
	if raise {
		x.cfg.Notifier.Raise(ctx, broker.Event{Type: broker.EventPullDenied, TenantID: d.TenantID, Namespace: namespace, Severity: broker.SeverityWarning,
			Message:   fmt.Sprintf("%d pulls denied in namespace %s within %s; the last: %s", broker.DenialsBeforeEvent, namespace, broker.DenialWindow, d.Msg),
			DedupeKey: key})
	}
}

// granted resolves PULL_DENIED of the tenant's namespace, if raised.
func (x *Exchanger) granted(ctx context.Context, tenantID, namespace string) {
	key := pullDeniedCondition(tenantID, namespace)
	x.mu.Lock()
	c := x.denials[key]
	open := c != nil && c.open
	delete(x.denials, key)
	x.mu.Unlock()
	if open {
		x.cfg.Notifier.Resolve(ctx, key, "a Pod in "+namespace+" got the credential")
	}
}
