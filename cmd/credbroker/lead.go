package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/credbroker/credbroker/broker/notify"
	"github.com/credbroker/credbroker/broker/refresh"
	"github.com/credbroker/credbroker/broker/registryhealth"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/leader"
)

// startLeader runs leadership terms (or, without leader election, one term)
// on wg until ctx ends; without a cluster there is nothing to lead.
func startLeader(ctx context.Context, wg *sync.WaitGroup, cfg serveConfig, p parts, credentials *api.CredentialAPI, log *slog.Logger) error {
	var outbox *notify.Outbox
	if cfg.webhookURL != "" {
		secret, err := readSecretFile(cfg.webhookSecret, "webhook secret")
		if err != nil {
			return err
		}
		outbox = notify.NewOutbox(notify.OutboxConfig{URL: cfg.webhookURL, Secret: secret, Encode: api.EventJSON},
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
	term := leader.Term{Kube: p.clients.Sync, Registry: p.registry, Source: p.github, Prober: github.NewPullProber(github.PullProberConfig{Recheck: p.github.Recheck, PlainHTTP: cfg.plainHTTPRegistry()}),
		// No Recheck: a third party's password is never shown to GitHub.
		RegistryChecker: github.NewPullProber(github.PullProberConfig{PlainHTTP: cfg.plainHTTPRegistry()}),
		RegistryHealth:  registryhealth.Config{Interval: cfg.registryCheckInterval},
		Credentials:     p.store, Sealer: p.sealer, Notifier: p.notifier, Outbox: outbox, Deliveries: p.deliveries, Metrics: p.metrics, Attach: credentials.Attach, Log: log,
		Syncer:    syncer,
		Refresher: refresh.Config{Lead: cfg.refreshLead, PATRecheck: cfg.patRecheck, Revoker: p.github, GitHub: p.github, Publications: p.publications}}
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
