package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker/inbox"
	"github.com/credbroker/credbroker/broker/notify"
	"github.com/credbroker/credbroker/broker/refresh"
	"github.com/credbroker/credbroker/broker/registryhealth"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/k8ssync"
)

// Term is one leadership term's work. Kube, Registry, Source, Notifier,
// Attach and Log are required; a nil Prober, RegistryChecker, Outbox,
// Deliveries, Sealer or Metrics turns that feature off.
type Term struct {
	Kube     kubernetes.Interface
	Registry *broker.Tenants
	Source   broker.Source
	Prober   broker.Prober
	// RegistryChecker checks the tenants' further registry credentials;
	// nil: they are not checked. It must not be the Prober if that one
	// asks GitHub about refused logins: these passwords are no GitHub's.
	RegistryChecker broker.RegistryChecker
	RegistryHealth  registryhealth.Config
	// Credentials persist sealed credentials across restarts (with Sealer).
	Credentials broker.CredentialStore
	Sealer      *broker.Sealer
	Notifier    *notify.Notifier
	// Outbox delivers the event log to the backend's webhook (signed
	// POSTs); nil: no outbound webhook.
	Outbox *notify.Outbox
	// Deliveries are GitHub's webhooks, stored by any replica, which the
	// term acts on; nil: none.
	Deliveries *inbox.Runner
	Metrics    *broker.Metrics
	// Attach makes the term's Refresher the one the API answers from, until
	// the returned function is called.
	Attach func(*refresh.Refresher) (detach func())
	// Syncer and Refresher settings.
	Syncer    k8ssync.Config
	Refresher refresh.Config
	Log       *slog.Logger
	// Restart is Hold's pause between a term that ended early and the
	// next; Clock times it (the real clock when nil).
	Restart time.Duration
	Clock   clock.Clock
}

// DefaultRestart is the pause before a term that ended early is replaced.
const DefaultRestart = 5 * time.Second

// Run builds the term's parts and runs them until ctx ends (the term ends)
// or one of them stops, and returns when all have stopped. The parts are
// up to five: the Syncer (writes pull Secrets), the Refresher (keeps
// credentials fresh), and, each when configured, the registry checks
// (registryhealth.Monitor), the outbox deliverer and the GitHub deliveries.
func (t Term) Run(ctx context.Context) error {
	// The last leader may have raised conditions this one must not repeat.
	if err := t.Notifier.Load(ctx); err != nil {
		t.Log.Error("load open conditions from the event log", slog.Any("error", err))
	}
	if t.Sealer == nil {
		t.Log.Warn("no encryption key: credentials are not persisted, and a restart mints new ones")
	}
	syncCfg := t.Syncer
	syncCfg.Reporter = refresh.NewSyncConditions(t.Notifier)
	syncer, err := k8ssync.New(t.Kube, syncCfg, t.Log)
	if err != nil {
		return err
	}
	refCfg := t.Refresher
	refCfg.Notifier, refCfg.Prober = t.Notifier, t.Prober
	refCfg.Credentials, refCfg.Sealer, refCfg.Metrics = t.Credentials, t.Sealer, t.Metrics
	parts := map[string]func(context.Context) error{"syncer": syncer.Run}
	if t.RegistryChecker != nil {
		healthCfg := t.RegistryHealth
		healthCfg.Notifier, healthCfg.Reporter = t.Notifier, syncer
		refCfg.Registries = registryhealth.NewMonitor(healthCfg, t.Registry, t.RegistryChecker, t.Log)
		parts["registry checks"] = refCfg.Registries.Run
	}
	refresher := refresh.New(refCfg, t.Registry, t.Source, syncer, t.Log)
	defer t.Attach(refresher)()
	parts["refresher"] = refresher.Run
	if t.Outbox != nil {
		parts["webhook deliverer"] = t.Outbox.Run
	}
	if t.Deliveries != nil {
		parts["GitHub deliveries"] = func(ctx context.Context) error { return t.Deliveries.Run(ctx, refresher.Act) }
	}
	// A part that stops on its own (an error, a panic) ends the term: the
	// others are stopped too, and Hold starts a fresh term, rebuilt from the
	// stores, rather than run on with half of one.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for name, run := range parts {
		wg.Go(func() {
			if err := runContained(ctx, name, run); err != nil && ctx.Err() == nil {
				t.Log.Error(name+" stopped", slog.Any("error", err))
				errs <- err
				cancel()
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

// runContained runs one part of a term, turning its panic into an error
// with the stack.
func runContained(ctx context.Context, name string, run func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v\n%s", name, p, debug.Stack())
		}
	}()
	return run(ctx)
}

// Hold runs terms back to back until ctx ends: a term that ended on its
// own is followed, after Restart (DefaultRestart when zero), by a fresh
// one. The caller holds the leadership for as long as ctx lasts.
func (t Term) Hold(ctx context.Context) {
	if t.Clock == nil {
		t.Clock = clock.RealClock{}
	}
	if t.Restart == 0 {
		t.Restart = DefaultRestart
	}
	for {
		err := t.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		t.Log.Error("the leadership term ended early; starting a new one", slog.Any("error", err), slog.Duration("in", t.Restart))
		select {
		case <-ctx.Done():
			return
		case <-t.Clock.After(t.Restart):
		}
	}
}
