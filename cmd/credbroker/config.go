package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/credbroker/credbroker/broker/refresh"
	"github.com/credbroker/credbroker/broker/registryhealth"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/internal/loopback"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/registrytoken"
)

const envPrefix = "CREDBROKER_"

// keyEnv holds the PAT encryption key itself (base64), for platforms that
// inject secrets as environment variables rather than files.
const keyEnv = envPrefix + "ENCRYPTION_KEY"

type serveConfig struct {
	kubeconfig            string
	storeKind             string
	namespace             string
	kubeQPS               float64
	kubeBurst             int
	leaderElect           bool
	identity              string
	refreshLead           time.Duration
	patRecheck            time.Duration
	registryCheckInterval time.Duration
	serviceAccounts       string
	plainHTTP             string
	reserved              string
	granted               string
	namespaceLabels       namespaceLabelConfig
	webhookURL            string
	webhookSecret         string
	ghWebhookSecret       string
	eventPoll             time.Duration
	tlsCert               string
	tlsKey                string
	tlsClientCA           string
	insecure              bool
	tokenFile             string
	policyFile            string
	oidc                  auth.OIDCConfig
	certs                 auth.ClientCertificates
	tokenReview           bool
	reviewAudience        string
	providerAudience      string
	providerCache         time.Duration
	exchangePeerRate      float64
	exchangePeerBurst     int
	markNamespaces        bool
	admissionPolicy       string
	admissionWebhook      bool
	imageRules            broker.ImageRules
	registryTokens        registryTokenConfig
	githubURL             string
	appID                 int64
	appClientID           string
	appKeyFile            string
	appPermissions        permissions
	grpcAddr              string
	httpAddr              string
	dataDir               string
	keyFile               string
	dev                   bool
	devRegistryBin        string
	devRegistryPort       int
	shutdownTimeout       time.Duration
	logLevel              slog.Level
}

// parseServeFlags reads the flags, then the environment for flags not on
// the command line, then applies dev mode's defaults, and checks the result.
func parseServeFlags(args []string, stderr io.Writer, getenv func(string) string) (serveConfig, error) {
	var cfg serveConfig
	fs := flag.NewFlagSet("credbroker serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set, err := applyEnv(fs, getenv)
	if err != nil {
		return cfg, err
	}
	if cfg.dev {
		cfg.devDefaults(set)
	}
	cfg.imageRules.InCluster = cfg.registryTokens.inCluster()
	return cfg, cfg.validate()
}

// register defines the flags of serve on fs, writing into cfg.
func (cfg *serveConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&cfg.grpcAddr, "grpc-addr", ":9090", "gRPC listen address")
	fs.StringVar(&cfg.httpAddr, "http-addr", ":8080", "REST gateway, health and metrics listen address")
	fs.StringVar(&cfg.dataDir, "data-dir", "/var/lib/credbroker", "directory of the embedded bbolt store")
	fs.StringVar(&cfg.keyFile, "encryption-key-file", "", "file with the 32-byte AES key (raw or base64) that seals PATs at rest; "+keyEnv+" may hold the key itself")
	fs.BoolVar(&cfg.dev, "dev", false, "development mode: loopback listeners, a temporary data dir and a generated encryption key; never for production")
	fs.IntVar(&cfg.devRegistryPort, "dev-registry-port", 0, "dev mode: the emulated ghcr.io's port on loopback (a node's credential provider config names it); any free one when 0")
	fs.StringVar(&cfg.devRegistryBin, "dev-registry-bin", "", "dev mode: a CNCF Distribution registry binary (make registry) that serves the emulated ghcr.io's images, kept in <data-dir>/registry; without it the emulator answers manifest requests only")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight calls may take to finish on SIGTERM")
	fs.TextVar(&cfg.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&cfg.githubURL, "github-url", github.DefaultBaseURL, "GitHub REST API URL (GitHub Enterprise Server: https://HOST/api/v3/)")
	fs.Int64Var(&cfg.appID, "github-app-id", 0, "GitHub App id, for github_app tenants")
	fs.StringVar(&cfg.appClientID, "github-app-client-id", "", "GitHub App client ID (Iv23li…): names the App in its JWTs in place of --github-app-id, as GitHub recommends")
	fs.StringVar(&cfg.appKeyFile, "github-app-key-file", "", "PEM file of the GitHub App's private key")
	cfg.appPermissions = permissions(broker.DefaultAppPermissions())
	fs.Var(&cfg.appPermissions, "github-app-permissions", "the most an App tenant may request for its tokens: comma-separated name=level (read, write, admin)")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to sync Secrets into; in a pod the in-cluster config is used without it")
	fs.StringVar(&cfg.storeKind, "store", "bolt", "where tenants live: bolt (embedded, one replica) or kubernetes (Secrets in --namespace, several replicas)")
	fs.StringVar(&cfg.namespace, "namespace", envOr(getenv, "POD_NAMESPACE", "credbroker"), "credbroker's own namespace: the leader Lease and the kubernetes store")
	fs.Float64Var(&cfg.kubeQPS, "kube-qps", k8ssync.DefaultQPS, "requests per second to the Kubernetes API server")
	fs.IntVar(&cfg.kubeBurst, "kube-burst", k8ssync.DefaultBurst, "burst of requests to the Kubernetes API server")
	fs.BoolVar(&cfg.leaderElect, "leader-elect", true, "with several replicas, only the holder of the Lease refreshes and syncs")
	fs.StringVar(&cfg.identity, "identity", envOr(getenv, "POD_NAME", hostname()), "this replica's name in leader election")
	fs.StringVar(&cfg.reserved, "reserved-namespaces", "", "comma-separated namespaces no tenant is ever bound to, besides kube-* and --namespace")
	fs.StringVar(&cfg.granted, "granted-namespaces", "", "namespaced mode: comma-separated namespaces where credbroker was granted Secret rights (RoleBindings); tenants are bound there only, and nothing is read cluster-wide but namespaces. Empty: cluster-wide rights")
	// Who binds a namespace by selector (DESIGN.md §17, docs/security.md).
	fs.StringVar(&cfg.namespaceLabels.prefix, "namespace-label-prefix", broker.DefaultSelectorPrefix, "the platform-owned label key prefix tenants' namespace selectors must use; the guard policy lets only --namespace-label-writer-users/-groups (and credbroker) set, change or remove such labels on a Namespace")
	fs.StringVar(&cfg.namespaceLabels.users, "namespace-label-writer-users", "", "comma-separated users, besides credbroker's own identity, who may set labels under --namespace-label-prefix (a namespace provisioner's ServiceAccount: system:serviceaccount:<namespace>:<name>); written into the guard policy credbroker applies (--admission-policy)")
	fs.StringVar(&cfg.namespaceLabels.groups, "namespace-label-writer-groups", "system:masters", "comma-separated groups who may set labels under --namespace-label-prefix; written into the guard policy credbroker applies (--admission-policy)")
	fs.StringVar(&cfg.serviceAccounts, "service-accounts", "default", "comma-separated ServiceAccounts whose imagePullSecrets get the Secret, for tenants with patchServiceAccounts")
	fs.StringVar(&cfg.plainHTTP, "plain-http-registries", "", "comma-separated registry hosts (host:port) the prober speaks plain HTTP to, as nodes do with a hosts.toml; loopback registries always are")
	fs.DurationVar(&cfg.refreshLead, "refresh-lead", refresh.DefaultLead, "renew an App token this long before it expires (at most a sixth of its life), less up to a tenth at random")
	fs.DurationVar(&cfg.patRecheck, "pat-recheck", refresh.DefaultPATRecheck, "validate each PAT with GitHub this often (and at each expiry warning)")
	fs.DurationVar(&cfg.registryCheckInterval, "registry-check-interval", registryhealth.DefaultRegistryCheckInterval, "check each tenant's further registry credentials this often (a login, and a manifest HEAD of the entry's check image)")
	fs.StringVar(&cfg.webhookURL, "webhook-url", "", "URL the backend receives events at (POST, JSON, signed); none when empty")
	fs.StringVar(&cfg.webhookSecret, "webhook-secret-file", "", "file with the HMAC-SHA256 key that signs webhook bodies (X-Credbroker-Signature); required with --webhook-url")
	fs.StringVar(&cfg.ghWebhookSecret, "github-webhook-secret-file", "", "file with the GitHub App's webhook secret; enables POST /webhooks/github")
	fs.DurationVar(&cfg.eventPoll, "event-poll", 2*time.Second, "how often event watchers read the event log (events written by another replica)")
	fs.StringVar(&cfg.tlsCert, "tls-cert-file", "", "PEM certificate both listeners serve TLS with")
	fs.StringVar(&cfg.tlsKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&cfg.tlsClientCA, "tls-client-ca-file", "", "PEM CA bundle whose client certificates identify callers (mTLS)")
	fs.StringVar(&cfg.certs.UsernamePrefix, "tls-client-username-prefix", "cert:", "put before every client certificate's name, so that it cannot pass for a ServiceAccount, a token-file name or an OIDC user (policy subjects name it so)")
	fs.StringVar(&cfg.certs.GroupsPrefix, "tls-client-groups-prefix", "cert:", "put before every client certificate's Organization (policy subjects: group:cert:<organization>)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "allow listeners on non-loopback addresses without TLS (something else, a mesh, encrypts)")
	fs.StringVar(&cfg.tokenFile, "auth-token-file", "", "YAML file of callers' bearer tokens, hashed (sha256), with names and roles")
	fs.StringVar(&cfg.policyFile, "auth-policy-file", "", "YAML file binding names and group:<name>s to roles")
	fs.StringVar(&cfg.oidc.IssuerURL, "oidc-issuer-url", "", "OpenID Connect issuer whose ID tokens identify callers")
	fs.StringVar(&cfg.oidc.ClientID, "oidc-client-id", "", "audience the OIDC ID tokens must carry")
	fs.StringVar(&cfg.oidc.UsernameClaim, "oidc-username-claim", "sub", "OIDC claim that names the caller")
	fs.StringVar(&cfg.oidc.GroupsClaim, "oidc-groups-claim", "", "OIDC claim that lists the caller's groups")
	fs.StringVar(&cfg.oidc.UsernamePrefix, "oidc-username-prefix", "oidc:", "put before every OIDC user name, so that it cannot pass for a ServiceAccount, a token-file name or a group (policy subjects name it so)")
	fs.StringVar(&cfg.oidc.GroupsPrefix, "oidc-groups-prefix", "oidc:", "put before every OIDC group (policy subjects: group:oidc:<group>)")
	fs.BoolVar(&cfg.tokenReview, "auth-token-review", false, "accept Kubernetes ServiceAccount tokens, checked with the TokenReview API")
	fs.StringVar(&cfg.reviewAudience, "auth-token-review-audience", "credbroker", "audience a reviewed token must be issued for")
	fs.StringVar(&cfg.providerAudience, "provider-audience", "credbroker", "audience of the Pod ServiceAccount tokens the kubelet credential provider exchanges (the serviceAccountTokenAudience of its CredentialProviderConfig)")
	fs.BoolVar(&cfg.markNamespaces, "mark-namespaces", true, "label and annotate every bound namespace with its tenant and image scopes, which the admission policy reads (docs/admission.md); needs patch on namespaces")
	fs.StringVar(&cfg.admissionPolicy, "admission-policy", "", "apply the admission policies at start: enforce or dry-run (the chart ships them instead; needs the right to write ValidatingAdmissionPolicies); none when empty")
	fs.BoolVar(&cfg.admissionWebhook, "admission-webhook", false, "serve the validating admission webhook at POST "+admission.WebhookPath+" on the HTTP listener, over its TLS (docs/admission.md)")
	fs.Func("public-image-scopes", "comma-separated <registry>/<owner> scopes every tenant may run images from (base images, a mesh's sidecars); no tenant's credential goes with them",
		listFlag(&cfg.imageRules.Public, broker.ParseImageScope))
	fs.Func("image-mirrors", "comma-separated <prefix>=<upstream> registry mirrors (ghcr-mirror.example.com=ghcr.io, mirror.example.com/ghcr.io=ghcr.io): an image through one is judged as the upstream image it stands for",
		listFlag(&cfg.imageRules.Mirrors, broker.ParseMirror))
	fs.StringVar(&cfg.registryTokens.service, "registry-token-service", "", "serve the token service of an in-cluster registry whose auth.token.service is this name, at GET/POST "+registrytoken.TokenPath+" and its keys at "+registrytoken.JWKSPath+" (docs/registry-token-service.md); off when empty")
	fs.StringVar(&cfg.registryTokens.issuer, "registry-token-issuer", "credbroker", "the iss of registry tokens (the registry's auth.token.issuer)")
	fs.StringVar(&cfg.registryTokens.keyFiles, "registry-token-key-files", "", "comma-separated PEM files of ECDSA P-256 keys: the first signs registry tokens, all are published (rotation); a fresh key per start when empty (dev mode only)")
	fs.StringVar(&cfg.registryTokens.audience, "registry-token-audience", "credbroker-registry", "audience of the ServiceAccount tokens callers present to the registry token service as their password")
	fs.StringVar(&cfg.registryTokens.robotHost, "registry-robot-host", "", "the in-cluster registry's host:port as Pods name it: every pull Secret also carries its namespace's robot credential for it (needs --registry-token-service)")
	fs.StringVar(&cfg.registryTokens.robotKeyFile, "registry-robot-key-file", "", "file of the secret (32 bytes or more) robot passwords are derived from; every replica needs the same; a fresh one per start when empty (dev mode only)")
	fs.DurationVar(&cfg.registryTokens.robotRotation, "registry-robot-rotation", 24*time.Hour, "how often robot credentials rotate (the previous one is taken for one more period)")
	fs.StringVar(&cfg.registryTokens.publicPrefixes, "registry-public-prefixes", "", "comma-separated repository paths (\"platform/\") anyone may pull from the in-cluster registry without credentials; each covers whole path components (platform/… but not platformx/…), and nobody may push there")
	fs.StringVar(&cfg.registryTokens.namespacePrefix, "registry-namespace-prefix", registrytoken.DefaultNamespacePrefix, "where a namespace's own repositories are in the in-cluster registry, {namespace} standing for its name; the first component must hold a '.' or '_', which no GitHub login does")
	fs.StringVar(&cfg.registryTokens.ownerPrefix, "registry-owner-prefix", registrytoken.DefaultOwnerPrefix, "where a tenant owner's repositories are in the in-cluster registry, {login} standing for its login, {id} for its numeric GitHub id; "+registrytoken.IDOwnerPrefix+" keeps them with the account across a rename (whoever takes the old login gets nothing of them), the default keys them by login as ghcr.io does (docs/registry-token-service.md)")
	fs.DurationVar(&cfg.providerCache, "provider-max-cache", broker.DefaultProviderCache, "longest a kubelet may reuse a credential the provider handed out: a revocation or a tenant's removal reaches the nodes within it")
	// Issue 30, hole 4: the exchange is called before anyone is known, so
	// its limit is per caller address.
	fs.Float64Var(&cfg.exchangePeerRate, "exchange-peer-rate", 100, "credential exchanges per second one caller address may make (a node's kubelet asks once per Pod and image it does not hold a credential for); 0 with --exchange-peer-burst 0: no limit")
	fs.IntVar(&cfg.exchangePeerBurst, "exchange-peer-burst", 500, "burst of credential exchanges one caller address may make (a node starting many Pods at once)")
}

// applyEnv sets every flag not given on the command line from
// CREDBROKER_<FLAG>, and returns the names of the flags set either way.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) (map[string]bool, error) {
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
	return set, envErr
}

// devDefaults makes dev mode reachable from this machine only, with a
// throw-away data dir, the in-process emulator and one replica, unless a
// flag says otherwise.
func (cfg *serveConfig) devDefaults(set map[string]bool) {
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
	if !set["admission-policy"] {
		cfg.admissionPolicy = string(admission.Enforce)
	}
}

// validate refuses contradictory or unsafe settings: first of what
// credbroker talks to and whose names it trusts, then of how it serves
// (validateServing).
func (cfg serveConfig) validate() error {
	if cfg.storeKind != "bolt" && cfg.storeKind != "kubernetes" {
		return fmt.Errorf("--store %q: want bolt or kubernetes", cfg.storeKind)
	}
	if err := github.ValidateClientID(cfg.appClientID); err != nil {
		return fmt.Errorf("--github-app-client-id: %w", err)
	}
	if cfg.appClientID != "" && cfg.appKeyFile == "" && !cfg.dev {
		return errors.New("--github-app-client-id needs --github-app-key-file: the App signs its JWTs with its private key")
	}
	if cfg.webhookURL != "" {
		u, err := url.Parse(cfg.webhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--webhook-url %q: want an http(s) URL", cfg.webhookURL)
		}
		if cfg.webhookSecret == "" {
			return errors.New("--webhook-url needs --webhook-secret-file: the backend must be able to tell credbroker's events from forgeries")
		}
	}
	if cfg.admissionPolicy != "" {
		if _, err := admission.Mode(cfg.admissionPolicy).Actions(); err != nil {
			return fmt.Errorf("--admission-policy: %w", err)
		}
		if !cfg.markNamespaces {
			return errors.New("--admission-policy needs --mark-namespaces: the policy reads the marks")
		}
	}
	if err := broker.CheckSelectorPrefix(cfg.namespaceLabels.prefix); err != nil {
		return fmt.Errorf("--namespace-label-prefix %w", err)
	}
	if cfg.registryTokens.service != "" && cfg.registryTokens.keyFiles == "" && !cfg.dev {
		return errors.New("--registry-token-service needs --registry-token-key-files: a registry must trust the same keys after a restart")
	}
	for _, prefix := range splitList(cfg.registryTokens.publicPrefixes) {
		if _, err := registrytoken.ParsePublicPrefix(prefix); err != nil {
			return fmt.Errorf("--registry-public-prefixes: %w", err)
		}
	}
	// An empty prefix lets an OIDC user or a client certificate take the
	// name of a ServiceAccount, a token-file caller or a group.
	for _, p := range []struct{ flag, prefix string }{{"--oidc-username-prefix", cfg.oidc.UsernamePrefix}, {"--oidc-groups-prefix", cfg.oidc.GroupsPrefix},
		{"--tls-client-username-prefix", cfg.certs.UsernamePrefix}, {"--tls-client-groups-prefix", cfg.certs.GroupsPrefix}} {
		if strings.TrimSpace(p.prefix) == "" {
			return fmt.Errorf("%s is empty: names from this source could then pass for a ServiceAccount, a token-file caller or another source's; keep the default or choose a prefix of your own (\"sso:\")", p.flag)
		}
	}
	if cfg.registryTokens.robotHost != "" {
		if cfg.registryTokens.service == "" {
			return errors.New("--registry-robot-host needs --registry-token-service: robots authenticate to it")
		}
		if cfg.registryTokens.robotKeyFile == "" && !cfg.dev {
			return errors.New("--registry-robot-host needs --registry-robot-key-file: every replica must derive the same robot passwords")
		}
	}
	return cfg.validateServing()
}

// validateServing refuses limits and listeners that cannot work or that
// expose credbroker: the admission webhook without TLS, checks too
// frequent, half-set limits, listeners reachable without TLS.
func (cfg serveConfig) validateServing() error {
	if cfg.admissionWebhook && cfg.tlsCert == "" {
		return errors.New("--admission-webhook needs --tls-cert-file: the API server calls webhooks over HTTPS only")
	}
	if cfg.registryCheckInterval < 10*time.Second {
		return fmt.Errorf("--registry-check-interval %s: want 10s or more; each check logs in to a registry", cfg.registryCheckInterval)
	}
	if cfg.exchangePeerRate < 0 || cfg.exchangePeerBurst < 0 || (cfg.exchangePeerBurst == 0) != (cfg.exchangePeerRate == 0) {
		return fmt.Errorf("--exchange-peer-rate %g and --exchange-peer-burst %d: want both positive, or both 0 for no limit", cfg.exchangePeerRate, cfg.exchangePeerBurst)
	}
	if cfg.providerCache <= 0 {
		return fmt.Errorf("--provider-max-cache %s: want a positive duration", cfg.providerCache)
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return errors.New("--tls-cert-file and --tls-key-file go together")
	}
	if cfg.tlsClientCA != "" && cfg.tlsCert == "" {
		return errors.New("--tls-client-ca-file needs --tls-cert-file: client certificates come with TLS")
	}
	if cfg.tlsCert == "" && !cfg.insecure {
		for _, addr := range []string{cfg.grpcAddr, cfg.httpAddr} {
			if !loopback.Is(addr) {
				return fmt.Errorf("listener %s is reachable from other machines and has no TLS: set --tls-cert-file and --tls-key-file, or --insecure if something else encrypts the traffic", addr)
			}
		}
	}
	return nil
}

// permissions is a flag of GitHub App permissions: name=level pairs.
type permissions map[string]string

func (p *permissions) String() string {
	var pairs []string
	for _, name := range slices.Sorted(maps.Keys(*p)) {
		pairs = append(pairs, name+"="+(*p)[name])
	}
	return strings.Join(pairs, ",")
}

func (p *permissions) Set(v string) error {
	perms := permissions{}
	for _, pair := range strings.Split(v, ",") {
		name, level, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" || (level != "read" && level != "write" && level != "admin") {
			return fmt.Errorf("%q is not name=read, name=write or name=admin", pair)
		}
		perms[name] = level
	}
	*p = perms
	return nil
}

// namespaceScope is where tenants may be bound: never --namespace (where
// credbroker keeps its state), --reserved-namespaces or kube-*, and in
// namespaced mode only --granted-namespaces.
func (cfg serveConfig) namespaceScope() broker.NamespaceScope {
	scope := broker.NamespaceScope{Reserved: append([]string{cfg.namespace}, splitList(cfg.reserved)...), SelectorPrefix: cfg.namespaceLabels.prefix}
	if cfg.granted != "" {
		scope.Granted = splitList(cfg.granted)
	}
	return scope
}

// plainHTTPRegistry reports whether the prober speaks plain HTTP to a
// registry host.
func (cfg serveConfig) plainHTTPRegistry() func(host string) bool {
	listed := splitList(cfg.plainHTTP)
	return func(host string) bool { return loopback.Is(host) || slices.Contains(listed, host) }
}

// namespaceLabelConfig is who may write the labels that bind namespaces.
type namespaceLabelConfig struct {
	prefix, users, groups string
}

// guardConfig is what the guard policy credbroker applies lets whom write;
// credbroker's own identity is asked of the API server.
func (cfg serveConfig) guardConfig() admission.MarkGuardConfig {
	return admission.MarkGuardConfig{SelectorPrefix: cfg.namespaceLabels.prefix,
		WriterUsers: splitList(cfg.namespaceLabels.users), WriterGroups: splitList(cfg.namespaceLabels.groups)}
}

// splitList splits a comma-separated flag, dropping blanks.
func splitList(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// listFlag sets *dst to the items of a comma-separated flag, each read by
// parse.
func listFlag[T any](dst *[]T, parse func(string) (T, error)) func(string) error {
	return func(v string) error {
		*dst = nil
		for _, item := range splitList(v) {
			parsed, err := parse(item)
			if err != nil {
				return err
			}
			*dst = append(*dst, parsed)
		}
		return nil
	}
}

// registryTokenConfig is the in-cluster registry's token service.
type registryTokenConfig struct {
	service, issuer, keyFiles, audience, publicPrefixes string
	namespacePrefix, ownerPrefix                        string
	robotHost, robotKeyFile                             string
	robotRotation                                       time.Duration
}

// inCluster is the in-cluster registry as admission judges its images: a
// namespace's Pods may run what the token service lets them pull. None
// without --registry-robot-host, the host Pods name it by.
func (c registryTokenConfig) inCluster() broker.InClusterRegistry {
	if c.robotHost == "" || c.service == "" {
		return broker.InClusterRegistry{}
	}
	return broker.InClusterRegistry{Host: c.robotHost, NamespacePrefix: c.namespacePrefix, PublicPrefixes: splitList(c.publicPrefixes)}
}

// robots are the per-namespace robots, or nil without --registry-robot-host.
func (c registryTokenConfig) robots() (*registrytoken.RobotPasswords, error) {
	if c.robotHost == "" {
		return nil, nil
	}
	key := make([]byte, registrytoken.MinRobotKeySize)
	if c.robotKeyFile == "" {
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	} else {
		var err error
		if key, err = os.ReadFile(c.robotKeyFile); err != nil {
			return nil, fmt.Errorf("--registry-robot-key-file: %w", err)
		}
		key = bytes.TrimSpace(key)
	}
	return registrytoken.NewRobotPasswords(key, c.robotRotation, c.robotHost, nil)
}

// keys reads the signing keys, or makes one (dev mode).
func (c registryTokenConfig) keys() (*registrytoken.Keys, error) {
	if c.keyFiles == "" {
		return registrytoken.GenerateKeys()
	}
	var pems [][]byte
	for _, f := range splitList(c.keyFiles) {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--registry-token-key-files: %w", err)
		}
		pems = append(pems, data)
	}
	return registrytoken.ParseKeys(pems...)
}
