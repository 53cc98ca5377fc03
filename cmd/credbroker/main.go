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

	"github.com/credbroker/credbroker/broker/inbox"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/k8ssync"
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

// serve runs one replica until ctx ends: it opens its parts, starts what
// every replica runs (the tenant cache, the exchange), checks it can serve,
// then serves the API while the leader's terms run beside it.
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
	p, err := connect(cfg, dev, getenv)
	if err != nil {
		return err
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
	metrics, err := p.instrument(cfg, dev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before the store closes
	tenants := p.startRegistry(ctx, &wg, cfg, log)
	var exchange *api.ExchangeAPI
	if p.clients.Requests != nil {
		if exchange, err = startExchange(ctx, &wg, cfg, &p, tenants, log); err != nil {
			return err
		}
	}
	if err := p.prepare(ctx, cfg, dev); err != nil {
		return err
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
// them, and the HTTP endpoints that authenticate on their own: GitHub's
// webhook deliveries when a secret is configured, the admission Reviewer
// and the registry token service when served.
func newServer(cfg serveConfig, p parts, credentials *api.CredentialAPI, exchange *api.ExchangeAPI, dev *devMode, metrics *prometheus.Registry, log *slog.Logger) (*server.Server, error) {
	handlers := map[string]http.Handler{}
	if cfg.ghWebhookSecret != "" {
		secret, err := readSecretFile(cfg.ghWebhookSecret, "GitHub webhook secret")
		if err != nil {
			return nil, err
		}
		// Every replica stores deliveries; the leader acts on them.
		handlers["POST /webhooks/github"] = github.DeliveryHandler(secret, p.deliveries.Accept, log)
	}
	if p.admission != nil {
		// The API server calls it: no caller identity, answers to anyone.
		handlers["POST "+admission.WebhookPath] = p.admission
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
		Events:      api.NewEventAPI(p.store, p.notifier.Appended, cfg.eventPoll, clock.RealClock{}, log),
	}, p.store.Ping, metrics, log)
}
