package broker

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/utils/clock"
)

// Delivery is a GitHub webhook delivery the broker acts on: what happened
// to an installation, under GitHub's delivery id (X-GitHub-Delivery).
type Delivery struct {
	ID string `json:"id"`
	// Digest is "sha256:" and the hex SHA-256 of the signed body. The
	// signature covers the body and not the delivery id, so a captured
	// body sent again under a fresh id is the same delivery: the Inbox
	// keys on the digest (Key).
	Digest         string             `json:"digest,omitempty"`
	InstallationID int64              `json:"installationId"`
	Change         InstallationChange `json:"change"`
	// Account is the installation's account as the delivery names it: on
	// a rename, its new login under the same numeric id.
	Account  Owner     `json:"account"`
	Received time.Time `json:"received"`
}

// Key is what the Inbox tells deliveries apart by: the signed body's
// digest, or the delivery id for a delivery stored without one (by a
// release before digests). GitHub's redelivery sends the same body under
// the same id, so the digest catches it as the id did; a replay under a
// made-up id is caught by the digest alone.
func (d Delivery) Key() string {
	if d.Digest != "" {
		return d.Digest
	}
	return d.ID
}

// Inbox keeps GitHub deliveries from their arrival, on whichever replica
// received them, until the leader has acted on them. It remembers the keys
// (Delivery.Key) of recent deliveries, so that one redelivered or
// replayed, under its own id or another, is acted on once.
type Inbox interface {
	// AddDelivery stores d; added is false when a delivery with d.Key() is
	// known already (d is then not stored again).
	AddDelivery(ctx context.Context, d Delivery) (added bool, err error)
	// PendingDeliveries returns up to limit deliveries not yet finished,
	// oldest first.
	PendingDeliveries(ctx context.Context, limit int) ([]Delivery, error)
	// FinishDelivery marks the delivery with Key key acted on. The key is
	// remembered for a bounded number of deliveries after it.
	FinishDelivery(ctx context.Context, key string) error
}

// DeliveryPoll is how often the leader looks for deliveries another
// replica stored.
const DeliveryPoll = 2 * time.Second

// Deliveries takes GitHub's deliveries in on any replica and has the leader
// act on them from the Inbox: a delivery is acknowledged as soon as it is
// stored (GitHub gives a delivery 10 seconds and does not redeliver a
// failed one), and acting on it — a renewal, a probe — takes as long as
// it takes, on the leader's own context.
type Deliveries struct {
	inbox Inbox
	clock clock.Clock
	log   *slog.Logger
	wake  chan struct{}
}

// NewDeliveries returns Deliveries over inbox.
func NewDeliveries(inbox Inbox, clk clock.Clock, log *slog.Logger) *Deliveries {
	return &Deliveries{inbox: inbox, clock: clk, log: log, wake: make(chan struct{}, 1)}
}

// Accept stores d for the leader; added is false for a delivery seen
// before. When it returns nil the delivery will be acted on.
func (ds *Deliveries) Accept(ctx context.Context, d Delivery) (added bool, err error) {
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
func (ds *Deliveries) Run(ctx context.Context, act func(context.Context, Delivery)) error {
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
