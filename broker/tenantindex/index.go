package tenantindex

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/kit"

	"k8s.io/utils/clock"
)

// Index keeps every tenant in memory, by the namespaces it lists and
// whether it has a selector, for the credential provider's exchange on a
// replica whose store has no watch (the embedded store of dev mode, one
// replica): reloaded at every change made through Tenants and every
// resync.
type Index struct {
	registry *broker.Tenants
	clock    clock.Clock
	log      *slog.Logger

	mu       sync.RWMutex
	loaded   bool
	listing  map[string][]broker.Tenant // by namespace
	selector []broker.Tenant
}

// New returns an index of the tenants of registry; it fills when Run
// starts.
func New(registry *broker.Tenants, clk clock.Clock, log *slog.Logger) *Index {
	return &Index{registry: registry, clock: clk, log: log}
}

// Run loads the tenants, and again after every change and every resync,
// until ctx ends.
func (x *Index) Run(ctx context.Context, resync time.Duration) {
	changed := make(chan struct{}, 1)
	defer x.registry.Subscribe(func(string) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})()
	kit.StepUntilDone(ctx, x.clock, changed, func(ctx context.Context) time.Time {
		x.load(ctx)
		return x.clock.Now().Add(resync)
	})
}

func (x *Index) load(ctx context.Context) {
	listing, selector := map[string][]broker.Tenant{}, []broker.Tenant(nil)
	err := x.registry.Each(ctx, func(t broker.Tenant) error {
		for _, ns := range t.Namespaces {
			listing[ns] = append(listing[ns], t)
		}
		if t.NamespaceSelector != "" {
			selector = append(selector, t)
		}
		return nil
	})
	if err != nil {
		x.log.WarnContext(ctx, "load tenants for the credential provider; keeping the last", slog.Any("error", err))
		return
	}
	x.mu.Lock()
	x.loaded, x.listing, x.selector = true, listing, selector
	x.mu.Unlock()
}

// Synced reports whether the tenants have been loaded.
func (x *Index) Synced() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.loaded
}

// Listing returns the tenants that list namespace.
func (x *Index) Listing(namespace string) []broker.Tenant {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.listing[namespace]
}

// WithSelector returns the tenants with a namespace selector.
func (x *Index) WithSelector() []broker.Tenant {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.selector
}
