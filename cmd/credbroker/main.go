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
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/githubtest"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/server"
)

const envPrefix = "CREDBROKER_"

// keyEnv holds the PAT encryption key itself (base64), for platforms that
// inject secrets as environment variables rather than files.
const keyEnv = envPrefix + "ENCRYPTION_KEY"

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

type serveConfig struct {
	kubeconfig      string
	storeKind       string
	namespace       string
	kubeQPS         float64
	kubeBurst       int
	leaderElect     bool
	identity        string
	refreshLead     time.Duration
	patRecheck      time.Duration
	serviceAccounts string
	webhookURL      string
	webhookSecret   string
	ghWebhookSecret string
	eventPoll       time.Duration
	tlsCert         string
	tlsKey          string
	tlsClientCA     string
	insecure        bool
	tokenFile       string
	policyFile      string
	oidc            auth.OIDCConfig
	tokenReview     bool
	reviewAudience  string
	githubURL       string
	appID           int64
	appKeyFile      string
	grpcAddr        string
	httpAddr        string
	dataDir         string
	keyFile         string
	dev             bool
	shutdownTimeout time.Duration
	logLevel        slog.Level
}

func parseServeFlags(args []string, stderr io.Writer, getenv func(string) string) (serveConfig, error) {
	var cfg serveConfig
	fs := flag.NewFlagSet("credbroker serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.grpcAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&cfg.httpAddr, "http-addr", ":8080", "REST gateway, health and metrics listen address")
	fs.StringVar(&cfg.dataDir, "data-dir", "/var/lib/credbroker", "directory of the embedded bbolt store")
	fs.StringVar(&cfg.keyFile, "encryption-key-file", "", "file with the 32-byte AES key (raw or base64) that seals PATs at rest; "+keyEnv+" may hold the key itself")
	fs.BoolVar(&cfg.dev, "dev", false, "development mode: loopback listeners, a temporary data dir and a generated encryption key; never for production")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight calls may take to finish on SIGTERM")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&cfg.githubURL, "github-url", github.DefaultBaseURL, "GitHub REST API URL (GitHub Enterprise Server: https://HOST/api/v3/)")
	fs.Int64Var(&cfg.appID, "github-app-id", 0, "GitHub App id, for github_app tenants")
	fs.StringVar(&cfg.appKeyFile, "github-app-key-file", "", "PEM file of the GitHub App's private key")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to sync Secrets into; in a pod the in-cluster config is used without it")
	fs.StringVar(&cfg.storeKind, "store", "bolt", "where tenants live: bolt (embedded, one replica) or kubernetes (Secrets in --namespace, several replicas)")
	fs.StringVar(&cfg.namespace, "namespace", envOr(getenv, "POD_NAMESPACE", "credbroker"), "credbroker's own namespace: the leader Lease and the kubernetes store")
	fs.Float64Var(&cfg.kubeQPS, "kube-qps", k8ssync.DefaultQPS, "requests per second to the Kubernetes API server")
	fs.IntVar(&cfg.kubeBurst, "kube-burst", k8ssync.DefaultBurst, "burst of requests to the Kubernetes API server")
	fs.BoolVar(&cfg.leaderElect, "leader-elect", true, "with several replicas, only the holder of the Lease refreshes and syncs")
	fs.StringVar(&cfg.identity, "identity", envOr(getenv, "POD_NAME", hostname()), "this replica's name in leader election")
	fs.StringVar(&cfg.serviceAccounts, "service-accounts", "default", "comma-separated ServiceAccounts whose imagePullSecrets get the Secret, for tenants with patchServiceAccounts")
	fs.DurationVar(&cfg.refreshLead, "refresh-lead", broker.DefaultLead, "renew an App token this long before it expires (at most a sixth of its life), less up to a tenth at random")
	fs.DurationVar(&cfg.patRecheck, "pat-recheck", broker.DefaultPATRecheck, "validate each PAT with GitHub this often (and at each expiry warning)")
	fs.StringVar(&cfg.webhookURL, "webhook-url", "", "URL the backend receives events at (POST, JSON, signed); none when empty")
	fs.StringVar(&cfg.webhookSecret, "webhook-secret-file", "", "file with the HMAC-SHA256 key that signs webhook bodies (X-Credbroker-Signature); required with --webhook-url")
	fs.StringVar(&cfg.ghWebhookSecret, "github-webhook-secret-file", "", "file with the GitHub App's webhook secret; enables POST /webhooks/github")
	fs.DurationVar(&cfg.eventPoll, "event-poll", 2*time.Second, "how often event watchers read the event log (events written by another replica)")
	fs.StringVar(&cfg.tlsCert, "tls-cert-file", "", "PEM certificate both listeners serve TLS with")
	fs.StringVar(&cfg.tlsKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&cfg.tlsClientCA, "tls-client-ca-file", "", "PEM CA bundle whose client certificates identify callers (mTLS)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "allow listeners on non-loopback addresses without TLS (something else, a mesh, encrypts)")
	fs.StringVar(&cfg.tokenFile, "auth-token-file", "", "YAML file of callers' bearer tokens, hashed (sha256), with names and roles")
	fs.StringVar(&cfg.policyFile, "auth-policy-file", "", "YAML file binding names and group:<name>s to roles")
	fs.StringVar(&cfg.oidc.IssuerURL, "oidc-issuer-url", "", "OpenID Connect issuer whose ID tokens identify callers")
	fs.StringVar(&cfg.oidc.ClientID, "oidc-client-id", "", "audience the OIDC ID tokens must carry")
	fs.StringVar(&cfg.oidc.UsernameClaim, "oidc-username-claim", "sub", "OIDC claim that names the caller")
	fs.StringVar(&cfg.oidc.GroupsClaim, "oidc-groups-claim", "", "OIDC claim that lists the caller's groups")
	fs.BoolVar(&cfg.tokenReview, "auth-token-review", false, "accept Kubernetes ServiceAccount tokens, checked with the TokenReview API")
	fs.StringVar(&cfg.reviewAudience, "auth-token-review-audience", "credbroker", "audience a reviewed token must be issued for")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && !set[f.Name] && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
			set[f.Name] = true
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if cfg.storeKind != "bolt" && cfg.storeKind != "kubernetes" {
		return cfg, fmt.Errorf("--store %q: want bolt or kubernetes", cfg.storeKind)
	}
	if cfg.webhookURL != "" {
		u, err := url.Parse(cfg.webhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return cfg, fmt.Errorf("--webhook-url %q: want an http(s) URL", cfg.webhookURL)
		}
		if cfg.webhookSecret == "" {
			return cfg, errors.New("--webhook-url needs --webhook-secret-file: the backend must be able to tell credbroker's events from forgeries")
		}
	}
	if cfg.dev {
		// Dev mode is reachable from this machine only, unless asked otherwise.
		if !set["grpc-addr"] {
			cfg.grpcAddr = "127.0.0.1:9090"
		}
		if !set["http-addr"] {
			cfg.httpAddr = "127.0.0.1:8080"
		}
		if !set["data-dir"] {
			cfg.dataDir = ""
		}
		if !set["github-url"] {
			cfg.githubURL = "" // the in-process emulator
		}
		if !set["leader-elect"] {
			cfg.leaderElect = false // one replica
		}
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return cfg, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	if cfg.tlsClientCA != "" && cfg.tlsCert == "" {
		return cfg, errors.New("--tls-client-ca-file needs --tls-cert-file: client certificates come with TLS")
	}
	if cfg.tlsCert == "" && !cfg.insecure {
		for _, addr := range []string{cfg.grpcAddr, cfg.httpAddr} {
			if !loopback(addr) {
				return cfg, fmt.Errorf("listener %s is reachable from other machines and has no TLS: set --tls-cert-file and --tls-key-file, or --insecure if something else encrypts the traffic", addr)
			}
		}
	}
	return cfg, nil
}

func serve(ctx context.Context, cfg serveConfig, stderr io.Writer, getenv func(string) string) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	if cfg.dev && cfg.dataDir == "" {
		dir, err := os.MkdirTemp("", "credbroker-dev-")
		if err != nil {
			return fmt.Errorf("dev data dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		cfg.dataDir = dir
	}
	// Dev mode writes its key and demo PAT here before the store opens.
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	sealer, err := loadSealer(cfg, getenv)
	if err != nil {
		return err
	}
	kube, err := kubeClient(cfg, getenv)
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(cfg, kube)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeStore(); err != nil {
			log.Error("close store", slog.Any("error", err))
		}
	}()

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	brokerMetrics, err := broker.NewMetrics(metrics)
	if err != nil {
		return err
	}
	gh, demo, err := githubClient(cfg, brokerMetrics.GitHubRateLimit)
	if err != nil {
		return err
	}
	if demo != nil {
		defer demo.server.Close()
		if err := os.WriteFile(filepath.Join(cfg.dataDir, "demo-pat"), []byte(demo.PAT), 0o600); err != nil {
			return fmt.Errorf("dev demo PAT: %w", err)
		}
	}

	registry := broker.NewRegistry(store, sealer, gh, time.Now)
	if err := registry.CheckSealed(ctx); err != nil {
		return fmt.Errorf("stored PATs cannot be opened: %w", err)
	}
	if demo != nil {
		if err := registerDemo(ctx, registry, demo); err != nil {
			return err
		}
	}

	credentials := api.NewCredentialAPI(registry, log)
	notifier := broker.NewNotifier(store, cfg.webhookURL != "", time.Now, brokerMetrics, log)
	handlers := map[string]http.Handler{}
	if cfg.ghWebhookSecret != "" {
		secret, err := readSecretFile(cfg.ghWebhookSecret, "GitHub webhook secret")
		if err != nil {
			return err
		}
		handlers["POST /webhooks/github"] = github.WebhookHandler(secret, func() github.InstallationListener {
			if r := credentials.Refresher(); r != nil {
				return r
			}
			return nil
		}, log)
	}
	var webhook *broker.Webhook
	if cfg.webhookURL != "" {
		secret, err := readSecretFile(cfg.webhookSecret, "webhook secret")
		if err != nil {
			return err
		}
		webhook = broker.NewWebhook(broker.WebhookConfig{URL: cfg.webhookURL, Secret: secret, Encode: api.EventJSON}, store, notifier.Appended, brokerMetrics, log)
	}
	authn, adminToken, err := authenticators(cfg, kube, log)
	if err != nil {
		return err
	}
	var policy *auth.Policy
	if cfg.policyFile != "" {
		if policy, err = auth.LoadPolicy(cfg.policyFile); err != nil {
			return err
		}
	}
	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{
		GRPCAddr:        cfg.grpcAddr,
		HTTPAddr:        cfg.httpAddr,
		ShutdownTimeout: cfg.shutdownTimeout,
		Handlers:        handlers,
		Guard:           server.NewGuard(server.GuardConfig{Authenticator: authn, Policy: policy, Audit: store}, log),
		TLS:             tlsConfig,
	}, server.Services{
		Tenants:     api.NewTenantAPI(registry, log),
		Images:      api.NewImageAPI(registry, log),
		Credentials: credentials,
		Events:      api.NewEventAPI(store, notifier.Appended, cfg.eventPoll, log),
	}, store.Ping, metrics, log)
	if err != nil {
		return err
	}
	if demo != nil {
		printDevBanner(stderr, srv, cfg, demo, adminToken)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if kube == nil {
		log.Warn("no Kubernetes cluster (--kubeconfig, or run in a pod): tenants are served but no credential is synced")
	} else {
		lead := func(ctx context.Context) {
			runSync(ctx, kube, leader{registry: registry, github: gh, credentials: credentials, store: store, sealer: sealer,
				notifier: notifier, webhook: webhook, metrics: brokerMetrics}, cfg, log)
		}
		wg.Go(func() {
			if !cfg.leaderElect {
				lead(ctx)
				return
			}
			err := k8ssync.RunAsLeader(ctx, kube, k8ssync.LeaderConfig{Namespace: cfg.namespace, Name: "credbroker", Identity: cfg.identity}, log, lead)
			if err != nil {
				log.Error("leader election", slog.Any("error", err))
			}
		})
	}
	err = srv.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// leader is what the leader runs with.
type leader struct {
	registry    *broker.Registry
	github      *github.Client
	credentials *api.CredentialAPI
	store       stateStore
	sealer      *broker.Sealer
	notifier    *broker.Notifier
	webhook     *broker.Webhook // nil without --webhook-url
	metrics     *broker.Metrics
}

// runSync is what the leader does: sync Secrets, keep credentials fresh and
// deliver the webhook outbox, until ctx ends.
func runSync(ctx context.Context, kube kubernetes.Interface, l leader, cfg serveConfig, log *slog.Logger) {
	syncer, err := k8ssync.New(kube, k8ssync.Config{
		ServiceAccounts: strings.Split(cfg.serviceAccounts, ","),
		OnChange: func(tenantID string, st broker.NamespaceSync) {
			l.notifier.SyncChanged(ctx, tenantID, st)
		},
	}, log)
	if err != nil {
		log.Error("syncer", slog.Any("error", err))
		return
	}
	// The last leader may have raised conditions this one must not repeat.
	if err := l.notifier.Load(ctx); err != nil {
		log.Error("load open conditions from the event log", slog.Any("error", err))
	}
	if l.sealer == nil {
		log.Warn("no encryption key: credentials are not persisted, and a restart mints new ones")
	}
	refresher := broker.NewRefresher(broker.RefresherConfig{
		Lead:        cfg.refreshLead,
		PATRecheck:  cfg.patRecheck,
		Notifier:    l.notifier,
		Prober:      github.NewProber(github.ProberConfig{}),
		Credentials: l.store,
		Sealer:      l.sealer,
		Metrics:     l.metrics,
	}, l.registry, l.github, syncer, log)
	defer l.credentials.Attach(refresher)()
	var wg sync.WaitGroup
	if l.webhook != nil {
		wg.Go(func() {
			if err := l.webhook.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("webhook deliverer stopped", slog.Any("error", err))
			}
		})
	}
	wg.Go(func() {
		if err := syncer.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("syncer stopped", slog.Any("error", err))
		}
	})
	wg.Go(func() {
		if err := refresher.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("refresher stopped", slog.Any("error", err))
		}
	})
	wg.Wait()
}

// authenticators builds the chain the flags ask for: client certificates,
// token file, OIDC, TokenReview, in that order. Dev mode adds a generated
// admin token, written to <data-dir>/admin.token, and returns it. A broker
// nobody can call is refused.
func authenticators(cfg serveConfig, kube kubernetes.Interface, log *slog.Logger) (auth.Chain, string, error) {
	var chain auth.Chain
	if cfg.tlsClientCA != "" {
		chain = append(chain, auth.ClientCertificates{})
	}
	adminToken := ""
	if cfg.dev {
		path := filepath.Join(cfg.dataDir, "admin.token")
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			data = []byte(base64.RawURLEncoding.EncodeToString(randomKey()))
			err = os.WriteFile(path, data, 0o600)
		}
		if err != nil {
			return nil, "", fmt.Errorf("dev admin token: %w", err)
		}
		adminToken = strings.TrimSpace(string(data))
		chain = append(chain, auth.NewTokens(auth.StaticToken{Name: "dev-admin", Token: adminToken, Roles: []string{auth.RoleAdmin}}))
	}
	if cfg.tokenFile != "" {
		f, err := auth.NewTokenFile(cfg.tokenFile, log)
		if err != nil {
			return nil, "", err
		}
		chain = append(chain, f)
	}
	if cfg.oidc.IssuerURL != "" {
		o, err := auth.NewOIDC(cfg.oidc)
		if err != nil {
			return nil, "", err
		}
		chain = append(chain, o)
	}
	if cfg.tokenReview {
		if kube == nil {
			return nil, "", errors.New("--auth-token-review needs a cluster (--kubeconfig, or run in a pod)")
		}
		chain = append(chain, auth.NewTokenReview(k8ssync.TokenReviewer(kube, cfg.reviewAudience), 10*time.Second))
	}
	if len(chain) == 0 {
		return nil, "", errors.New("nobody could call this broker: configure --auth-token-file, --tls-client-ca-file, --oidc-issuer-url or --auth-token-review")
	}
	return chain, adminToken, nil
}

// serverTLS loads the listeners' certificate and, if set, the client CA.
func serverTLS(cfg serveConfig) (*tls.Config, error) {
	if cfg.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if cfg.tlsClientCA != "" {
		pem, err := os.ReadFile(cfg.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate", cfg.tlsClientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// kubeClient connects to the cluster named by --kubeconfig, or to the one
// credbroker runs in; nil when there is neither.
func kubeClient(cfg serveConfig, getenv func(string) string) (kubernetes.Interface, error) {
	if cfg.kubeconfig == "" && getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, nil
	}
	rc, err := k8ssync.RestConfig(cfg.kubeconfig, float32(cfg.kubeQPS), cfg.kubeBurst)
	if err != nil {
		return nil, err
	}
	return k8ssync.NewClient(rc)
}

// stateStore is what both store kinds provide: tenants, sealed credentials,
// the event log with its webhook outbox, and the audit trail.
type stateStore interface {
	broker.Store
	broker.CredentialStore
	broker.EventStore
	broker.AuditStore
	Ping(context.Context) error
}

// openStore opens the tenant store the flags name.
func openStore(cfg serveConfig, kube kubernetes.Interface) (stateStore, func() error, error) {
	if cfg.storeKind == "kubernetes" {
		if kube == nil {
			return nil, nil, errors.New("--store kubernetes needs a cluster (--kubeconfig, or run in a pod)")
		}
		return k8ssync.NewStore(kube, cfg.namespace), func() error { return nil }, nil
	}
	s, err := boltstore.Open(cfg.dataDir)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// loopback reports whether a listen address is reachable from this
// machine only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readSecretFile reads a shared secret, refusing an empty one.
func readSecretFile(path, what string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	secret := []byte(strings.TrimSpace(string(data)))
	if len(secret) == 0 {
		return nil, fmt.Errorf("%s file %s is empty", what, path)
	}
	return secret, nil
}

func envOr(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return fallback
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "credbroker"
	}
	return h
}

// devGitHub is dev mode's in-process GitHub emulator and its demo fixture.
type devGitHub struct {
	server *githubtest.Server
	githubtest.Demo
}

// githubClient connects to the configured GitHub, or in dev mode without a
// --github-url starts the emulator with its demo App and PAT.
func githubClient(cfg serveConfig, onRateLimit func(int)) (*github.Client, *devGitHub, error) {
	ghCfg := github.Config{BaseURL: cfg.githubURL, AppID: cfg.appID}
	var demo *devGitHub
	switch {
	case cfg.dev && cfg.githubURL == "":
		server, fixture, err := githubtest.NewDemo()
		if err != nil {
			return nil, nil, err
		}
		demo = &devGitHub{server: server, Demo: fixture}
		ghCfg = github.Config{BaseURL: server.URL(), AppID: fixture.AppID, PrivateKey: fixture.AppKey}
	case cfg.appKeyFile != "":
		key, err := github.LoadPrivateKey(cfg.appKeyFile)
		if err != nil {
			return nil, nil, err
		}
		ghCfg.PrivateKey = key
	}
	ghCfg.OnRateLimit = onRateLimit
	client, err := github.New(ghCfg)
	if err != nil {
		if demo != nil {
			demo.server.Close()
		}
		return nil, nil, err
	}
	return client, demo, nil
}

// registerDemo registers dev mode's two tenants of the emulated
// organization, each proving its credential on the emulated registry: one
// with the App installation (refused by the registry, as ghcr.io refuses
// App tokens private pulls) and one with the machine user's classic PAT.
// Creating a tenant that exists is not an error, so a restart with the same
// --data-dir registers nothing new.
func registerDemo(ctx context.Context, registry *broker.Registry, demo *devGitHub) error {
	owner := broker.Owner{Login: demo.Org.Login, ID: demo.Org.ID, Type: broker.OwnerOrganization}
	registries := []string{demo.server.RegistryHost()}
	for _, t := range []broker.Tenant{
		{ID: "demo", Owner: owner, App: &broker.GitHubApp{InstallationID: demo.InstallationID}, Namespaces: []string{"demo"},
			Registries: registries, ProbeImage: demo.Image},
		{ID: "demo-pat", Owner: owner, PAT: &broker.PAT{Token: demo.PAT}, Namespaces: []string{"demo-pat"},
			Registries: registries, ProbeImage: demo.Image},
	} {
		if _, _, err := registry.Create(ctx, t); err != nil {
			return fmt.Errorf("register demo tenant %s: %w", t.ID, err)
		}
	}
	return nil
}

// loadSealer returns nil (PAT tenants refused) when no key is configured. In
// dev mode a missing key is generated into the data dir.
func loadSealer(cfg serveConfig, getenv func(string) string) (*broker.Sealer, error) {
	var raw []byte
	switch {
	case cfg.keyFile != "":
		data, err := os.ReadFile(cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("read encryption key: %w", err)
		}
		raw = data
	case getenv(keyEnv) != "":
		raw = []byte(getenv(keyEnv))
	case cfg.dev:
		path := filepath.Join(cfg.dataDir, "encryption.key")
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			data = []byte(base64.StdEncoding.EncodeToString(randomKey()))
			err = os.WriteFile(path, data, 0o600)
		}
		if err != nil {
			return nil, fmt.Errorf("dev encryption key: %w", err)
		}
		raw = data
	default:
		return nil, nil
	}
	key, err := broker.ParseKey(raw)
	if err != nil {
		return nil, err
	}
	return broker.NewSealer(key)
}

func randomKey() []byte {
	key := make([]byte, broker.KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never returns an error since Go 1.24.
	return key
}

func printDevBanner(w io.Writer, srv *server.Server, cfg serveConfig, demo *devGitHub, adminToken string) {
	grpcAddr, httpAddr, dataDir := srv.GRPCAddr().String(), srv.HTTPAddr().String(), cfg.dataDir
	_, _ = fmt.Fprintf(w, `
credbroker is running in DEV MODE: loopback only, throw-away data, generated keys. Never use it in production.

  gRPC     %[1]s   (reflection on; health: grpc.health.v1.Health)
  HTTP     http://%[2]s   (REST, /healthz, /readyz, /metrics, /openapi.json)
  data     %[3]s
  token    %[12]s   (admin; also in %[3]s/admin.token: every API call needs it)
  GitHub   %[4]s   (emulator: App %[5]d installed on %[6]s (id %[7]d) as installation %[8]d;
           a classic PAT of machine user %[9]s in %[3]s/demo-pat)
  registry %[10]s

Two demo tenants of %[6]s are registered, each proving its credential on the emulated
registry's image before anything is published: "demo" with the App installation (refused, as
ghcr.io refuses App tokens private pulls) and "demo-pat" with the machine user's classic PAT:

  export CREDBROKER_TOKEN=$(cat %[3]s/admin.token)
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/tenants
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/tenants/demo-pat/credential  # READY (with a cluster)
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/tenants/demo/credential      # FAILED: APP_TOKEN_NOT_ACCEPTED
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/events                       # the PROBE_FAILED event
  curl -sN -H "Authorization: Bearer $CREDBROKER_TOKEN" http://%[2]s/v1/events:watch               # follow events as they happen
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" -X POST http://%[2]s/v1/tenants/demo-pat/images:validate -d '{"image":"%[11]s"}'
  curl -s -H "Authorization: Bearer $CREDBROKER_TOKEN" -X POST http://%[2]s/v1/tenants/demo-pat/images:validate -d '{"image":"ghcr.io/evil/app"}'
  # an installation on someone else's account is refused, with the reason:
  curl -s -X POST http://%[2]s/v1/tenants -H "Authorization: Bearer $CREDBROKER_TOKEN" -d '{
    "id": "thief", "owner": {"login": "acme", "id": 5, "type": "OWNER_TYPE_ORGANIZATION"},
    "githubApp": {"installationId": %[8]d}}'

  grpcurl -plaintext %[1]s list
  grpcurl -plaintext -H "authorization: Bearer $CREDBROKER_TOKEN" -d '{"id":"demo-pat"}' %[1]s credbroker.v1.TenantService/GetTenant

`, grpcAddr, httpAddr, dataDir, demo.server.URL(), demo.AppID, demo.Org.Login, demo.Org.ID,
		demo.InstallationID, demo.MachineUser.Login, demo.server.RegistryHost(), demo.Image, adminToken)
	if cfg.kubeconfig != "" {
		_, _ = fmt.Fprintf(w, `Secrets are synced into the cluster of %[1]s; watch them appear:

  kubectl --kubeconfig %[1]s get secrets -A -l app.kubernetes.io/managed-by=credbroker
  kubectl --kubeconfig %[1]s -n demo-pat get secret ghcr-secret -o jsonpath='{.metadata.annotations}'
  kubectl --kubeconfig %[1]s -n demo-pat get events

`, cfg.kubeconfig)
	}
}
