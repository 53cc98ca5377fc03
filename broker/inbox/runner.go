package inbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/credbroker/credbroker/broker"

	"k8s.io/utils/clock"
)

// DeliveryPoll is how often the leader looks for deliveries another
// replica stored.
const DeliveryPoll = 2 * time.Second

// Runner takes GitHub's deliveries in on any replica and has the leader
// act on them from the Inbox: a delivery is acknowledged as soon as it is
// stored (GitHub gives a delivery 10 seconds and does not redeliver a
// failed one), and acting on it — a renewal, a probe — takes as long as
// it takes, on the leader's own context.
type Runner struct {
	inbox broker.Inbox
	clock clock.Clock
	log   *slog.Logger
	wake  chan struct{}
}

// NewRunner returns a Runner over inbox.
func NewRunner(inbox broker.Inbox, clk clock.Clock, log *slog.Logger) *Runner {
	return &Runner{inbox: inbox, clock: clk, log: log, wake: make(chan struct{}, 1)}
}

// Accept stores d for the leader; added is false for a delivery seen
// before. When it returns nil the delivery will be acted on.
func (ds *Runner) Accept(ctx context.Context, d broker.Delivery) (added bool, err error) {
	d.Received = ds.clock.Now()
	added, err = ds.inbox.AddDelivery(ctx, d)
	if added {
		select {
		case ds.wake <- struct{}{}:
		default:
		}
	}
	return added, err
}

// Run acts on every pending delivery with act, oldest first, until ctx
// ends; the leader runs it. A delivery is finished after act returns, so
// a leader that dies meanwhile leaves it to the next.
func (ds *Runner) Run(ctx context.Context, act func(context.Context, broker.Delivery)) error {
	for {
		pending, err := ds.inbox.PendingDeliveries(ctx, 100)
		if err != nil && ctx.Err() == nil {
			ds.log.WarnContext(ctx, "read GitHub deliveries", slog.Any("error", err))
		}
		for _, d := range pending {
			act(ctx, d)
			if err := ds.inbox.FinishDelivery(ctx, d.Key()); err != nil && ctx.Err() == nil {
				ds.log.WarnContext(ctx, "finish GitHub delivery", slog.String("delivery", d.ID), slog.Any("error", err))
			}
		}
		if len(pending) == 100 {
			continue
		}
		wait := ds.clock.NewTimer(DeliveryPoll)
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-ds.wake:
		case <-wait.C():
		}
		wait.Stop()
	}
}
