package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/credbroker/credbroker/broker/exchange"
	"github.com/credbroker/credbroker/broker/refresh"
	"github.com/credbroker/credbroker/broker/tenantindex"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/registrytoken"
)

// startExchange sets up the credential provider exchange of this replica:
// tenants (the Kubernetes store's cache, or an index of the embedded
// store's), publications and namespaces kept in memory, Pod tokens
// reviewed for the provider's audience, denials shown on the Pods. The
// publications live in the cluster when there is a Kubernetes store and an
// encryption key; otherwise in this process, where only the leader (the
// one replica of the embedded store) writes and answers. What else judges
// a namespace by its owner is set up on the same owners: the in-cluster
// registry's token service (with --registry-token-service) and the
// admission Reviewer (with --admission-webhook).
func startExchange(ctx context.Context, wg *sync.WaitGroup, cfg serveConfig, p *parts, tenants *k8ssync.TenantInformer, log *slog.Logger) (*api.ExchangeAPI, error) {
	var source k8ssync.TenantSource = tenants
	if tenants == nil {
		index := tenantindex.New(p.registry, clock.RealClock{}, log)
		wg.Go(func() { index.Run(ctx, refresh.DefaultResync) })
		source = index
	}
	var pubStore broker.PublicationStore = exchange.NewMemoryPublications()
	if store, ok := p.store.(*k8ssync.Store); ok && p.sealer != nil {
		pubs := k8ssync.NewPublicationSecrets(p.clients.Requests, store)
		wg.Go(func() { pubs.Run(ctx) })
		pubStore = pubs
	} else if ok {
		log.Warn("no encryption key: the credential provider is answered by the leading replica only")
	}
	p.publications = exchange.NewPublications(pubStore, p.sealer)
	owners := k8ssync.NewNamespaceInformer(p.clients.Requests, source, cfg.namespaceScope())
	events := k8ssync.NewPodEvents(p.clients.Requests)
	wg.Go(func() { owners.Run(ctx) })
	wg.Go(func() { events.Run(ctx) })
	exchanger := exchange.New(owners, p.publications,
		exchange.Config{MaxCache: cfg.providerCache, Images: cfg.imageRules, Notifier: p.notifier, Reporter: events, Metrics: p.metrics}, log)
	if cfg.registryTokens.service != "" {
		keys, err := cfg.registryTokens.keys()
		if err != nil {
			return nil, err
		}
		if p.robots, err = cfg.registryTokens.robots(); err != nil {
			return nil, err
		}
		svc, err := registrytoken.New(registrytoken.Config{Service: cfg.registryTokens.service, Issuer: cfg.registryTokens.issuer,
			PublicPrefixes: splitList(cfg.registryTokens.publicPrefixes), NamespacePrefix: cfg.registryTokens.namespacePrefix, OwnerPrefix: cfg.registryTokens.ownerPrefix, Robots: p.robots,
			BoundPods: k8ssync.BoundPods{Client: p.clients.Requests}},
			keys, auth.NewPodTokens(k8ssync.TokenReviewer(p.clients.Requests, cfg.registryTokens.audience), p.tokenChecks(cfg.registryTokens.audience)), owners, log)
		if err != nil {
			return nil, err
		}
		p.registryTokens = svc.Handler()
	}
	if cfg.admissionWebhook {
		p.admission = admission.NewReviewer(owners, admission.ReviewerConfig{Images: cfg.imageRules, Readiness: exchanger, ProviderAudience: cfg.providerAudience}, log)
	}
	return api.NewExchangeAPI(auth.NewPodTokens(k8ssync.TokenReviewer(p.clients.Requests, cfg.providerAudience), p.tokenChecks(cfg.providerAudience)), exchanger, log), nil
}
