package api

import (
	"context"
	"iter"
	"time"

	"github.com/credbroker/credbroker/broker/notify"

	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
)

// LateWrite is how late, after a later id, an event may still land in the
// log and reach the watches.
const LateWrite = 10 * time.Second

// eventTail follows the event log from a position, as a watch reads it:
// every event appended after it, in order, each once, and then waits for
// more.
//
// Every replica's credential provider may raise an event, with an id from
// its own clock, and its write may land after a later id of another
// replica: each read looks LateWrite back from the newest id seen (never
// before the position it started from) and skips what it returned before.
// What falls out of that window is forgotten, so a long watch costs no
// more memory than the events of LateWrite.
type eventTail struct {
	store    broker.EventStore
	appended func() <-chan struct{}
	ticker   clock.Ticker

	floor, newest string
	returned      map[string]bool
	woken         <-chan struct{} // taken before the last read
}

// newEventTail returns a tail of the events after after; appended returns
// a channel closed at the next append on this replica, and the tail reads
// the log every poll besides (appends of other replicas). Stop it.
func newEventTail(store broker.EventStore, appended func() <-chan struct{}, clk clock.WithTicker, poll time.Duration, after string) *eventTail {
	return &eventTail{store: store, appended: appended, ticker: clk.NewTicker(poll),
		floor: after, newest: after, returned: map[string]bool{}}
}

// stop releases the tail's ticker.
func (t *eventTail) stop() { t.ticker.Stop() }

// read yields the events not yet returned, page by page, in the log's
// order; a read error is yielded once, and ends it.
func (t *eventTail) read(ctx context.Context) iter.Seq2[broker.Event, error] {
	return func(yield func(broker.Event, error) bool) {
		// Take the wake-up channel before reading, so that an append
		// between the read and the wait is not missed.
		t.woken = t.appended()
		cursor := max(t.floor, notify.EventIDBefore(t.newest, LateWrite))
		for {
			page, err := t.store.EventsAfter(ctx, cursor, defaultEventPage)
			if err != nil {
				yield(broker.Event{}, err)
				return
			}
			for _, ev := range page {
				cursor, t.newest = ev.ID, max(t.newest, ev.ID)
				if t.returned[ev.ID] {
					continue
				}
				t.returned[ev.ID] = true
				if !yield(ev, nil) {
					return
				}
			}
			if len(page) < defaultEventPage {
				break
			}
		}
		for id := range t.returned { // out of the window: never read again
			if id <= notify.EventIDBefore(t.newest, LateWrite) {
				delete(t.returned, id)
			}
		}
	}
}

// wait returns when there may be more to read: an append on this replica
// since the last read began, or the next poll. It reports false when ctx
// ends first.
func (t *eventTail) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-t.woken:
	case <-t.ticker.C():
	}
	return true
}
