package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/k8ssync"
)

// Constructors from the configuration, one per part of the broker.

// authenticators builds the chain the flags ask for: client certificates,
// (in dev mode) the generated admin token, token file, OIDC, TokenReview, in
// that order. A broker nobody can call is refused.
func authenticators(cfg serveConfig, kube kubernetes.Interface, checks auth.TokenChecks, dev *devMode, log *slog.Logger) (auth.Chain, error) {
	var chain auth.Chain
	if cfg.tlsClientCA != "" {
		chain = append(chain, cfg.certs)
	}
	if dev != nil {
		chain = append(chain, auth.NewTokens(auth.StaticToken{Name: "dev-admin", Token: dev.adminToken, Roles: []string{auth.RoleAdmin}}))
	}
	if cfg.tokenFile != "" {
		f, err := auth.NewTokenFile(cfg.tokenFile, log)
		if err != nil {
			return nil, err
		}
		chain = append(chain, f)
	}
	if cfg.oidc.IssuerURL != "" {
		o, err := auth.NewOIDC(cfg.oidc)
		if err != nil {
			return nil, err
		}
		chain = append(chain, o)
	}
	if cfg.tokenReview {
		if kube == nil {
			return nil, errors.New("--auth-token-review needs a cluster (--kubeconfig, or run in a pod)")
		}
		chain = append(chain, auth.NewServiceAccountTokenReview(k8ssync.TokenReviewer(kube, cfg.reviewAudience), 10*time.Second, checks))
	}
	if len(chain) == 0 {
		return nil, errors.New("nobody could call this broker: configure --auth-token-file, --tls-client-ca-file, --oidc-issuer-url or --auth-token-review")
	}
	return chain, nil
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

// kubeClients connect to the cluster named by --kubeconfig, or to the one
// credbroker runs in; they are all nil when there is neither.
func kubeClients(cfg serveConfig, getenv func(string) string) (k8ssync.Clients, error) {
	if cfg.kubeconfig == "" && getenv("KUBERNETES_SERVICE_HOST") == "" {
		return k8ssync.Clients{}, nil
	}
	rc, err := k8ssync.RestConfig(cfg.kubeconfig, float32(cfg.kubeQPS), cfg.kubeBurst)
	if err != nil {
		return k8ssync.Clients{}, err
	}
	return k8ssync.NewClients(rc)
}

// stateStore is what both store kinds provide: tenants, sealed credentials,
// the event log with its webhook outbox, the audit trail and the GitHub
// delivery inbox.
type stateStore interface {
	broker.Store
	broker.CredentialStore
	broker.EventStore
	broker.AuditStore
	broker.Inbox
	Ping(context.Context) error
}

// openStore opens the tenant store the flags name.
func openStore(cfg serveConfig, kube k8ssync.Clients) (stateStore, func() error, error) {
	if cfg.storeKind == "kubernetes" {
		if kube.Sync == nil {
			return nil, nil, errors.New("--store kubernetes needs a cluster (--kubeconfig, or run in a pod)")
		}
		return kube.Store(cfg.namespace), func() error { return nil }, nil
	}
	s, err := boltstore.Open(cfg.dataDir)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// loadSealer returns the sealer of the configured key: dev mode's, the key
// file's, or the environment's; nil (PAT tenants refused) when there is none.
func loadSealer(cfg serveConfig, dev *devMode, getenv func(string) string) (*broker.Sealer, error) {
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
	case dev != nil:
		raw = dev.encryptionKey
	default:
		return nil, nil
	}
	key, err := broker.ParseKey(raw)
	if err != nil {
		return nil, err
	}
	return broker.NewSealer(key)
}

// githubClient connects to the configured GitHub, or to dev mode's emulator.
func githubClient(cfg serveConfig, dev *devMode, onRateLimit func(int)) (*github.Client, error) {
	ghCfg := github.Config{BaseURL: cfg.githubURL, AppID: cfg.appID, AppClientID: cfg.appClientID, OnRateLimit: onRateLimit}
	switch {
	case dev != nil && dev.emulator != nil:
		// Dev mode names its App by the client ID, as GitHub recommends.
		ghCfg.BaseURL, ghCfg.AppID, ghCfg.AppClientID, ghCfg.PrivateKey = dev.emulator.URL(), dev.demo.AppID, dev.demo.AppClientID, dev.demo.AppKey
	case cfg.appKeyFile != "":
		key, err := github.LoadPrivateKey(cfg.appKeyFile)
		if err != nil {
			return nil, err
		}
		ghCfg.PrivateKey = key
	}
	return github.New(ghCfg)
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
