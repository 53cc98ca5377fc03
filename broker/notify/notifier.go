package notify

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker"

	"k8s.io/utils/clock"
)

// Notifier turns conditions into events: it deduplicates them, writes them
// to the EventStore (queued for the webhook when one is configured) and
// wakes whoever waits for new events. It is safe for concurrent use; a nil
// *Notifier notifies nobody.
type Notifier struct {
	store    broker.EventStore
	deliver  bool
	clock    clock.PassiveClock
	log      *slog.Logger
	metrics  *broker.Metrics
	appended signal

	mu     sync.Mutex
	open   map[broker.ConditionKey]broker.Event // raised and not yet recovered
	lastID uint64
}

// NewNotifier returns a Notifier over store. deliver says whether events are
// queued for the webhook.
func NewNotifier(store broker.EventStore, deliver bool, clk clock.PassiveClock, metrics *broker.Metrics, log *slog.Logger) *Notifier {
	return &Notifier{store: store, deliver: deliver, clock: clk, log: log, metrics: metrics, open: map[broker.ConditionKey]broker.Event{}}
}

// Load rebuilds the open conditions from the event log, so that a restarted
// broker (or a new leader, which calls it at the start of its term) neither
// raises a known condition again nor forgets to announce its recovery.
func (n *Notifier) Load(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.open)
	after := ""
	for {
		page, err := n.store.EventsAfter(ctx, after, 500)
		if err != nil {
			return fmt.Errorf("load events: %w", err)
		}
		for _, ev := range page {
			switch {
			case ev.DedupeKey == "": // a record, no condition (WEBHOOK_UNDELIVERED)
			case ev.Type == broker.EventRecovered:
				delete(n.open, ev.DedupeKey)
			default:
				n.open[ev.DedupeKey] = ev
			}
			if id, err := strconv.ParseUint(ev.ID, 16, 64); err == nil {
				n.lastID = max(n.lastID, id)
			}
			after = ev.ID
		}
		if len(page) < 500 {
			return nil
		}
	}
}

// Raise records a condition. An open condition with the same dedupe key,
// type and reason is not raised again; it reports whether an event was
// written.
func (n *Notifier) Raise(ctx context.Context, ev broker.Event) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.open[ev.DedupeKey]; ok && cur.Type == ev.Type && cur.Reason == ev.Reason {
		return false
	}
	if !n.appendLocked(ctx, &ev, n.deliver) {
		return false
	}
	n.open[ev.DedupeKey] = ev
	return true
}

// Record writes an event that is no condition (it is neither deduplicated
// nor resolved) and is never sent by webhook: WEBHOOK_UNDELIVERED, which
// is about the webhook. It reports whether the event was written.
func (n *Notifier) Record(ctx context.Context, ev broker.Event) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.appendLocked(ctx, &ev, false)
}

// Resolve closes the open condition under key, if there is one, with a
// RECOVERED event.
func (n *Notifier) Resolve(ctx context.Context, key broker.ConditionKey, message string) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, ok := n.open[key]
	if !ok {
		return false
	}
	ev := broker.Event{Type: broker.EventRecovered, TenantID: cur.TenantID, Namespace: cur.Namespace, Registry: cur.Registry, Severity: broker.SeverityInfo,
		Reason: cur.Reason, Message: message, DedupeKey: key}
	if !n.appendLocked(ctx, &ev, n.deliver) {
		return false
	}
	delete(n.open, key)
	return true
}

// ResolveAll resolves every open condition of a set (all of a tenant's
// expiry thresholds, say).
func (n *Notifier) ResolveAll(ctx context.Context, set broker.ConditionSet, message string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	var keys []broker.ConditionKey
	for key := range n.open {
		if set.Has(key) {
			keys = append(keys, key)
		}
	}
	n.mu.Unlock()
	for _, key := range keys {
		n.Resolve(ctx, key, message)
	}
}

// Appended returns a channel that is closed at the next append.
func (n *Notifier) Appended() <-chan struct{} { return n.appended.wait() }

// appendLocked stamps ev with an id and the time and writes it. A store that
// fails loses the event's write, not the condition: it is logged, and the
// condition stays unrecorded so that the next Raise tries again.
//
// The write is made under the lock on purpose, the one store call that is:
// ids must reach the log in the order they are assigned, or a watcher that
// read up to id N would never see N-1 written after it.
func (n *Notifier) appendLocked(ctx context.Context, ev *broker.Event, deliver bool) bool {
	now := n.clock.Now()
	n.lastID = max(n.lastID+1, uint64(now.UnixNano()))
	ev.ID, ev.Time = fmt.Sprintf("%016x", n.lastID), now.UTC()
	if err := n.store.AppendEvent(ctx, *ev, deliver); err != nil {
		n.log.ErrorContext(ctx, "store event", slog.String("tenant", ev.TenantID), slog.String("type", string(ev.Type)), slog.Any("error", err))
		return false
	}
	n.metrics.Event(ev.Type)
	n.log.InfoContext(ctx, "event", slog.String("id", ev.ID), slog.String("tenant", ev.TenantID), slog.String("type", string(ev.Type)),
		slog.String("severity", string(ev.Severity)), slog.String("reason", string(ev.Reason)), slog.String("message", ev.Message))
	n.appended.notify()
	return true
}

// EventIDBefore is the id a Notifier would have assigned d before id
// (ids are nanosecond times): "" when id is not one.
func EventIDBefore(id string, d time.Duration) string {
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil || !ValidEventID(id) {
		return ""
	}
	return fmt.Sprintf("%016x", n-min(n, uint64(d.Nanoseconds())))
}

// ValidEventID accepts the ids a Notifier assigns: 16 lowercase hex digits.
func ValidEventID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
