package api

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/broker"
)

// eventLog is an event log in memory, ordered by id as the stores keep it.
type eventLog struct {
	broker.EventStore // only EventsAfter is called
	events            []broker.Event
}

func (l *eventLog) add(ids ...string) {
	for _, id := range ids {
		l.events = append(l.events, broker.Event{ID: id})
	}
	sort.Slice(l.events, func(i, j int) bool { return l.events[i].ID < l.events[j].ID })
}

func (l *eventLog) EventsAfter(_ context.Context, after string, limit int) ([]broker.Event, error) {
	var out []broker.Event
	for _, ev := range l.events {
		if ev.ID > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

// eventID is the id a Notifier assigns at t after the epoch.
func eventID(t time.Duration) string { return fmt.Sprintf("%016x", uint64(t.Nanoseconds())) }

func readAll(t *testing.T, tail *eventTail) []string {
	t.Helper()
	var ids []string
	for ev, err := range tail.read(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestAnEventTailReturnsEachEventOnceAndLateWritesWithinTheWindow: a read
// returns what was appended since, in order, never an event twice; an
// event written late, under an id older than the newest read but within
// LateWrite of it, still comes; one older than the start never does.
func TestAnEventTailReturnsEachEventOnceAndLateWritesWithinTheWindow(t *testing.T) {
	log := &eventLog{}
	start := time.Hour
	log.add(eventID(start-time.Second), eventID(start+time.Second), eventID(start+2*time.Second))
	tail := newEventTail(log, func() <-chan struct{} { return nil }, testingclock.NewFakeClock(time.Time{}), time.Minute, eventID(start))
	defer tail.stop()

	if got, want := readAll(t, tail), []string{eventID(start + time.Second), eventID(start + 2*time.Second)}; !slices.Equal(got, want) {
		t.Fatalf("first read %v, want %v", got, want)
	}
	if got := readAll(t, tail); len(got) != 0 {
		t.Fatalf("a read with nothing new returned %v", got)
	}
	late := eventID(start + 1500*time.Millisecond)
	tooOld := eventID(start - 500*time.Millisecond) // before the tail's start
	next := eventID(start + 3*time.Second)
	log.add(late, tooOld, next)
	if got, want := readAll(t, tail), []string{late, next}; !slices.Equal(got, want) {
		t.Fatalf("read after a late write %v, want %v", got, want)
	}
}

// TestAnEventTailWaitsForAnAppendOrThePollOnItsClock: wait returns at an
// append on this replica, at the next poll of the injected clock, and
// reports the end of its context.
func TestAnEventTailWaitsForAnAppendOrThePollOnItsClock(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	appended := make(chan struct{})
	tail := newEventTail(&eventLog{}, func() <-chan struct{} { return appended }, clk, time.Minute, "")
	defer tail.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	readAll(t, tail) // takes the wake-up channel
	clk.Step(time.Minute)
	if !tail.wait(ctx) {
		t.Fatal("wait after a poll interval reported the end of its context")
	}
	readAll(t, tail)
	close(appended)
	if !tail.wait(ctx) {
		t.Fatal("wait after an append reported the end of its context")
	}
	tail = newEventTail(&eventLog{}, func() <-chan struct{} { return nil }, clk, time.Minute, "")
	defer tail.stop()
	readAll(t, tail)
	cancel()
	if tail.wait(ctx) {
		t.Fatal("wait with its context ended reported more to read")
	}
}
