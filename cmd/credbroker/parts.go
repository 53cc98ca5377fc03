package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/credbroker/credbroker/broker/exchange"
	"github.com/credbroker/credbroker/broker/inbox"
	"github.com/credbroker/credbroker/broker/notify"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/registrytoken"
)

// parts are what every replica serves from.
type parts struct {
	clients  k8ssync.Clients // all nil without a cluster
	store    stateStore
	sealer   *broker.Sealer
	github   *github.Client
	registry *broker.Tenants
	notifier *notify.Notifier
	metrics  *broker.Metrics
	// deliveries takes GitHub's webhooks in on this replica; the leader
	// acts on them.
	deliveries *inbox.Runner
	// publications are the credentials the leader published, for the
	// credential provider exchange on every replica.
	publications *exchange.Publications
	// admission answers the validating admission webhook's AdmissionReviews,
	// when served.
	admission http.Handler
	// registryTokens is the in-cluster registry's token service, when served.
	registryTokens http.Handler
	// robots are the in-cluster registry's per-namespace credentials.
	robots *registrytoken.RobotPasswords
	// serviceAccountKeys verify ServiceAccount tokens locally (the
	// exchange's, the registry token service's, the API's) before any
	// TokenReview; nil without a cluster.
	serviceAccountKeys *auth.ServiceAccountKeys
}

// connect reaches what a replica needs before its store: the data dir, the
// encryption key, and the cluster with the keys its ServiceAccount tokens
// are checked against.
func connect(cfg serveConfig, dev *devMode, getenv func(string) string) (parts, error) {
	var p parts
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return p, fmt.Errorf("create data dir: %w", err)
	}
	var err error
	if p.sealer, err = loadSealer(cfg, dev, getenv); err != nil {
		return p, err
	}
	if p.clients, err = kubeClients(cfg, getenv); err != nil {
		return p, err
	}
	if p.clients.Requests != nil {
		p.serviceAccountKeys = auth.NewServiceAccountKeys(k8ssync.ServiceAccountIssuer(p.clients.Requests), clock.RealClock{})
	}
	return p, nil
}

// instrument registers the process's and the broker's metrics, and
// connects to GitHub, whose rate limit is one of them.
func (p *parts) instrument(cfg serveConfig, dev *devMode) (*prometheus.Registry, error) {
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if p.metrics, err = broker.NewMetrics(metrics); err != nil {
		return nil, err
	}
	if p.github, err = githubClient(cfg, dev, p.metrics.GitHubRateLimit); err != nil {
		return nil, err
	}
	return metrics, nil
}

// startRegistry builds the notifier and the tenant registry over the store.
// On the Kubernetes store, tenants are read through a cache it runs on wg
// and returns (nil otherwise): every replica writes there.
func (p *parts) startRegistry(ctx context.Context, wg *sync.WaitGroup, cfg serveConfig, log *slog.Logger) *k8ssync.TenantInformer {
	regCfg := broker.TenantsConfig{AppPermissions: cfg.appPermissions, Scope: cfg.namespaceScope(), Images: cfg.imageRules,
		Hosts: broker.RegistryHosts{Internal: cfg.registryTokens.robotHost}}
	if p.clients.Sync != nil {
		regCfg.Namespaces = k8ssync.ClusterNamespaces{Client: p.clients.Requests}
	}
	p.notifier = notify.NewNotifier(p.store, cfg.webhookURL != "", clock.RealClock{}, p.metrics, log)
	var tenants *k8ssync.TenantInformer
	regCfg.SoleWriter = cfg.storeKind != "kubernetes" // the embedded store is one process's
	if cfg.storeKind == "kubernetes" {
		tenants = k8ssync.NewTenantInformer(p.clients.Requests, cfg.namespace)
		wg.Go(func() { tenants.Run(ctx) })
		regCfg.Cache = tenants
	}
	p.registry = broker.NewTenants(p.store, p.sealer, p.github, clock.RealClock{}, regCfg)
	return tenants
}

// prepare makes the replica ready to serve: it refuses stored PATs the key
// cannot open, applies the admission policies when asked, and registers
// dev mode's demo tenants.
func (p *parts) prepare(ctx context.Context, cfg serveConfig, dev *devMode) error {
	if err := p.registry.CheckSealed(ctx); err != nil {
		return fmt.Errorf("stored PATs cannot be opened: %w", err)
	}
	if cfg.admissionPolicy != "" && p.clients.Requests != nil {
		if err := k8ssync.ApplyAdmissionPolicy(ctx, p.clients.Requests, admission.Mode(cfg.admissionPolicy), cfg.providerAudience, cfg.guardConfig()); err != nil {
			return err
		}
	}
	if dev != nil {
		if err := dev.registerDemo(ctx, p.registry); err != nil {
			return err
		}
	}
	return nil
}

// tokenChecks are the checks of a ServiceAccount token for audience
// before any TokenReview: shape, issuer, audience, expiry and signature.
func (p *parts) tokenChecks(audience string) auth.TokenChecks {
	return auth.TokenChecks{Audience: audience, Keys: p.serviceAccountKeys, PerPeer: auth.DefaultPeerReviews}
}
