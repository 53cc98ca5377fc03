// Package leader is what one replica runs while it holds the leadership: the
// Syncer that writes pull Secrets, the Refresher that keeps credentials
// fresh, and the webhook deliverer, wired to each other for one term. The
// API serves from any replica; these run on one.
package leader

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/k8ssync"
)

// Term is one leadership term's work. Kube, Registry, Source, Notifier,
// Attach and Log are required; a nil Prober, Webhook, Sealer or Metrics
// turns that feature off.
type Term struct {
	Kube     kubernetes.Interface
	Registry *broker.Registry
	Source   broker.Source
	Prober   broker.Prober
	// Credentials persist sealed credentials across restarts (with Sealer).
	Credentials broker.CredentialStore
	Sealer      *broker.Sealer
	Notifier    *broker.Notifier
	Webhook     *broker.Webhook // nil: no outbound webhook
	Metrics     *broker.Metrics
	// Attach makes the term's Refresher the one the API answers from, until
	// the returned function is called.
	Attach func(*broker.Refresher) (detach func())
	// Syncer and Refresher settings.
	Syncer    k8ssync.Config
	Refresher broker.RefresherConfig
	Log       *slog.Logger
}

// Run syncs Secrets, keeps credentials fresh and delivers the webhook
// outbox until ctx ends (the term ends), and returns when all three have
// stopped.
func (t Term) Run(ctx context.Context) error {
	// The last leader may have raised conditions this one must not repeat.
	if err := t.Notifier.Load(ctx); err != nil {
		t.Log.Error("load open conditions from the event log", slog.Any("error", err))
	}
	if t.Sealer == nil {
		t.Log.Warn("no encryption key: credentials are not persisted, and a restart mints new ones")
	}
	ledger := broker.NewSyncLedger(t.Notifier)
	syncCfg := t.Syncer
	syncCfg.Reporter = ledger
	syncer, err := k8ssync.New(t.Kube, syncCfg, t.Log)
	if err != nil {
		return err
	}
	refCfg := t.Refresher
	refCfg.Notifier, refCfg.Ledger, refCfg.Prober = t.Notifier, ledger, t.Prober
	refCfg.Credentials, refCfg.Sealer, refCfg.Metrics = t.Credentials, t.Sealer, t.Metrics
	refresher := broker.NewRefresher(refCfg, t.Registry, t.Source, syncer, t.Log)
	defer t.Attach(refresher)()

	parts := map[string]func(context.Context) error{"syncer": syncer.Run, "refresher": refresher.Run}
	if t.Webhook != nil {
		parts["webhook deliverer"] = t.Webhook.Run
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for name, run := range parts {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Log.Error(name+" stopped", slog.Any("error", err))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
