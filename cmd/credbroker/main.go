// Command credbroker runs the credential broker.
//
//	credbroker serve [flags]
//
// Every flag can also be set through the environment as CREDBROKER_<FLAG>,
// upper-cased with '-' as '_' (--grpc-addr is CREDBROKER_GRPC_ADDR); a flag on
// the command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/exchange"
	"github.com/credbroker/credbroker/broker/inbox"
	"github.com/credbroker/credbroker/broker/notify"
	"github.com/credbroker/credbroker/broker/refresh"
	"github.com/credbroker/credbroker/broker/registryhealth"
	"github.com/credbroker/credbroker/broker/tenantindex"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/leader"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/registrytoken"
	"github.com/credbroker/credbroker/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "credbroker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "serve" {
		_, _ = fmt.Fprintln(stderr, "usage: credbroker serve [flags]   (credbroker serve -h lists the flags)")
		return errors.New("no command")
	}
	cfg, err := parseServeFlags(args[1:], stderr, getenv)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr, getenv)
}

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
	// webhook is the validating admission webhook, when served.
	webhook http.Handler
	// registryTokens is the in-cluster registry's token service, when served.
	registryTokens http.Handler
	// robots are the in-cluster registry's per-namespace credentials.
	robots *registrytoken.Robots
	// serviceAccountKeys verify ServiceAccount tokens locally (the
	// exchange's, the registry token service's, the API's) before any
	// TokenReview; nil without a cluster.
	serviceAccountKeys *auth.ServiceAccountKeys
}

func serve(ctx context.Context, cfg serveConfig, stderr io.Writer, getenv func(string) string) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	var dev *devMode
	if cfg.dev {
		var err error
		if dev, err = startDev(&cfg); err != nil {
			return err
		}
		defer dev.close()
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	var p parts
	var err error
	if p.sealer, err = loadSealer(cfg, dev, getenv); err != nil {
		return err
	}
	if p.clients, err = kubeClients(cfg, getenv); err != nil {
		return err
	}
	if p.clients.Requests != nil {
		p.serviceAccountKeys = auth.NewServiceAccountKeys(k8ssync.ServiceAccountIssuer(p.clients.Requests), clock.RealClock{})
	}
	store, closeStore, err := openStore(cfg, p.clients)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeStore(); err != nil {
			log.Error("close store", slog.Any("error", err))
		}
	}()
	p.store = store
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if p.metrics, err = broker.NewMetrics(metrics); err != nil {
		return err
	}
	if p.github, err = githubClient(cfg, dev, p.metrics.GitHubRateLimit); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before the store closes
	regCfg := broker.TenantsConfig{AppPermissions: cfg.appPermissions, Scope: cfg.namespaceScope(), Images: cfg.imageRules,
		Hosts: broker.RegistryHosts{Internal: cfg.registryTokens.robotHost}}
	if p.clients.Sync != nil {
		regCfg.Namespaces = k8ssync.ClusterNamespaces{Client: p.clients.Requests}
	}
	p.notifier = notify.NewNotifier(store, cfg.webhookURL != "", clock.RealClock{}, p.metrics, log)
	var tenants *k8ssync.TenantInformer
	regCfg.SoleWriter = cfg.storeKind != "kubernetes" // the embedded store is one process's
	if cfg.storeKind == "kubernetes" {
		tenants = k8ssync.NewTenantInformer(p.clients.Requests, cfg.namespace)
		wg.Go(func() { tenants.Run(ctx) })
		regCfg.Cache = tenants
	}
	p.registry = broker.NewTenants(store, p.sealer, p.github, clock.RealClock{}, regCfg)
	var exchange *api.ExchangeAPI
	if p.clients.Requests != nil {
		if exchange, err = startExchange(ctx, &wg, cfg, &p, tenants, log); err != nil {
			return err
		}
	}
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
	p.deliveries = inbox.NewRunner(store, clock.RealClock{}, log)
	credentials := api.NewCredentialAPI(p.registry, log)
	srv, err := newServer(cfg, p, credentials, exchange, dev, metrics, log)
	if err != nil {
		return err
	}
	if dev != nil && dev.emulator != nil {
		dev.printBanner(stderr, srv, cfg, k8ssync.AnyNode(ctx, p.clients.Sync))
	}
	if err := startLeader(ctx, &wg, cfg, p, credentials, log); err != nil {
		return err
	}
	return srv.Run(ctx)
}

// newServer builds the API listeners: the services, the guard in front of
// them, and the GitHub webhook receiver when a secret is configured.
func newServer(cfg serveConfig, p parts, credentials *api.CredentialAPI, exchange *api.ExchangeAPI, dev *devMode, metrics *prometheus.Registry, log *slog.Logger) (*server.Server, error) {
	handlers := map[string]http.Handler{}
	if cfg.ghWebhookSecret != "" {
		secret, err := readSecretFile(cfg.ghWebhookSecret, "GitHub webhook secret")
		if err != nil {
			return nil, err
		}
		// Every replica stores deliveries; the leader acts on them.
		handlers["POST /webhooks/github"] = github.WebhookHandler(secret, p.deliveries.Accept, log)
	}
	if p.webhook != nil {
		// The API server calls it: no caller identity, answers to anyone.
		handlers["POST "+admission.WebhookPath] = p.webhook
	}
	if p.registryTokens != nil {
		// Callers authenticate to the token service itself (a ServiceAccount
		// token as the Basic password), not to the API's guard.
		for _, pattern := range []string{"GET " + registrytoken.TokenPath, "POST " + registrytoken.TokenPath, "GET " + registrytoken.JWKSPath} {
			handlers[pattern] = p.registryTokens
		}
	}
	authn, err := authenticators(cfg, p.clients.Requests, p.tokenChecks(cfg.reviewAudience), dev, log)
	if err != nil {
		return nil, err
	}
	var policy *auth.Policy
	if cfg.policyFile != "" {
		if policy, err = auth.LoadPolicy(cfg.policyFile); err != nil {
			return nil, err
		}
	}
	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return nil, err
	}
	guard := server.GuardConfig{Authenticator: authn, Policy: policy, Audit: p.store,
		PerPeer: auth.Limit{PerSecond: cfg.exchangePeerRate, Burst: cfg.exchangePeerBurst}}
	var exchangeService credbrokerv1.PullCredentialServiceServer // nil: UNIMPLEMENTED
	if exchange != nil {
		exchangeService = exchange
	}
	return server.New(server.Config{
		GRPCAddr:        cfg.grpcAddr,
		HTTPAddr:        cfg.httpAddr,
		ShutdownTimeout: cfg.shutdownTimeout,
		Handlers:        handlers,
		Guard:           server.NewGuard(guard, log),
		TLS:             tlsConfig,
	}, server.Services{
		Tenants:     api.NewTenantAPI(p.registry, log),
		Images:      api.NewImageAPI(p.registry, log),
		Credentials: credentials,
		Exchange:    exchangeService,
		Events:      api.NewEventAPI(p.store, p.notifier.Appended, cfg.eventPoll, log),
	}, p.store.Ping, metrics, log)
}

// startLeader runs leadership terms (or, without leader election, one term)
// on wg until ctx ends; without a cluster there is nothing to lead.
func startLeader(ctx context.Context, wg *sync.WaitGroup, cfg serveConfig, p parts, credentials *api.CredentialAPI, log *slog.Logger) error {
	var webhook *notify.Outbox
	if cfg.webhookURL != "" {
		secret, err := readSecretFile(cfg.webhookSecret, "webhook secret")
		if err != nil {
			return err
		}
		webhook = notify.NewOutbox(notify.OutboxConfig{URL: cfg.webhookURL, Secret: secret, Encode: api.EventJSON},
			p.store, p.notifier, p.metrics, log)
	}
	if p.clients.Sync == nil {
		log.Warn("no Kubernetes cluster (--kubeconfig, or run in a pod): tenants are served but no credential is synced")
		return nil
	}
	syncer := k8ssync.Config{ServiceAccounts: splitList(cfg.serviceAccounts), Scope: cfg.namespaceScope(), MarkNamespaces: cfg.markNamespaces, Images: cfg.imageRules,
		Workers: k8ssync.WorkersFor(cfg.kubeQPS)}
	if p.robots != nil { // not a typed nil in the interface
		syncer.Robots = p.robots
	}
	term := leader.Term{Kube: p.clients.Sync, Registry: p.registry, Source: p.github, Prober: github.NewProber(github.ProberConfig{Recheck: p.github.Recheck, PlainHTTP: cfg.plainHTTPRegistry()}),
		// No Recheck: a third party's password is never shown to GitHub.
		RegistryChecker: github.NewProber(github.ProberConfig{PlainHTTP: cfg.plainHTTPRegistry()}),
		RegistryHealth:  registryhealth.Config{Interval: cfg.registryCheckInterval},
		Credentials:     p.store, Sealer: p.sealer, Notifier: p.notifier, Webhook: webhook, Deliveries: p.deliveries, Metrics: p.metrics, Attach: credentials.Attach, Log: log,
		Syncer:    syncer,
		Refresher: refresh.Config{Lead: cfg.refreshLead, PATRecheck: cfg.patRecheck, Revoker: p.github, Publications: p.publications}}
	lead := term.Hold
	wg.Go(func() {
		if !cfg.leaderElect {
			lead(ctx)
			return
		}
		err := k8ssync.RunAsLeader(ctx, p.clients.Leader, k8ssync.LeaderConfig{Namespace: cfg.namespace, Name: "credbroker", Identity: cfg.identity}, log, lead)
		if err != nil {
			log.Error("leader election", slog.Any("error", err))
		}
	})
	return nil
}

// startExchange sets up the credential provider exchange of this replica:
// tenants (the Kubernetes store's cache, or an index of the embedded
// store's), publications and namespaces kept in memory, Pod tokens
// reviewed for the provider's audience, denials shown on the Pods. The
// publications live in the cluster when there is a Kubernetes store and an
// encryption key; otherwise in this process, where only the leader (the
// one replica of the embedded store) writes and answers.
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
		p.webhook = admission.NewWebhook(owners, admission.WebhookConfig{Images: cfg.imageRules, Readiness: exchanger, ProviderAudience: cfg.providerAudience}, log)
	}
	return api.NewExchangeAPI(auth.NewPodTokens(k8ssync.TokenReviewer(p.clients.Requests, cfg.providerAudience), p.tokenChecks(cfg.providerAudience)), exchanger, log), nil
}

// tokenChecks are the checks of a ServiceAccount token for audience
// before any TokenReview: shape, issuer, audience, expiry and signature.
func (p *parts) tokenChecks(audience string) auth.TokenChecks {
	return auth.TokenChecks{Audience: audience, Keys: p.serviceAccountKeys, PerPeer: auth.DefaultPeerReviews}
}
