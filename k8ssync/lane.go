package k8ssync

import (
	"sync/atomic"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// lane is one of the Syncer's queues of namespaces (the main one, the first
// publications') that counts the work it owes: namespaces queued, being
// reconciled, or waiting out the backoff of a failed reconcile. The queue's
// own Len counts only the namespaces ready to be taken; one taken by a
// worker, or parked by AddRateLimited, is invisible to it, and comes back.
// A namespace queued for later on purpose (AddAfter: a robot's rotation, a
// conflict's recheck) is owed once it is due, not before: those come back
// for as long as the Syncer runs, and a lane that counted them would never
// owe nothing.
type lane struct {
	workqueue.TypedRateLimitingInterface[string]
	limiter workqueue.TypedRateLimiter[string]
	clock   clock.WithDelayedExecution
	owed    *atomic.Int64
}

// newLane returns a lane whose retries wait on clk. The name is the
// queue's, and it must not be empty: a queue calls its metrics hooks, which
// keep the count, only when it has a name.
func newLane(name string, clk clock.WithDelayedExecution) *lane {
	owed := new(atomic.Int64)
	limiter := workqueue.DefaultTypedControllerRateLimiter[string]()
	return &lane{
		TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name, MetricsProvider: unfinished{owed}}),
		limiter: limiter,
		clock:   clk,
		owed:    owed,
	}
}

// AddRateLimited queues ns again when the rate limiter's backoff is over,
// as the queue's own does, and counts it as owed meanwhile. ns is queued
// before it stops counting as waiting, so it is never out of both counts.
// Unlike the queue's, two retries of one namespace wait on two timers, not
// on the earlier one: the second finds it queued, or reconciles it once
// more. A timer still waiting when the Syncer stops fires into a shut
// queue, which drops it.
func (l *lane) AddRateLimited(ns string) {
	l.owed.Add(1)
	l.clock.AfterFunc(l.limiter.When(ns), func() {
		l.Add(ns)
		l.owed.Add(-1)
	})
}

// Owed is the number of namespaces the lane has queued, is reconciling or
// will retry: zero when the Syncer has nothing left to do in it until a
// change comes or a deliberately delayed namespace comes due.
func (l *lane) Owed() int64 { return l.owed.Load() }

// unfinished counts, through the queue's metrics hooks, the namespaces a
// queue holds or is reconciling. The queue raises its depth when it takes a
// namespace in (not when it holds it already) and observes the work's
// duration when a worker is done with it; it lowers the depth when a worker
// takes it, which moves it from queued to reconciling, still owed. All three
// happen under the queue's lock, so the count has no gap between the queue
// handing a namespace out and the worker starting on it.
type unfinished struct{ n *atomic.Int64 }

func (u unfinished) NewDepthMetric(string) workqueue.GaugeMetric { return taken(u) }
func (u unfinished) NewWorkDurationMetric(string) workqueue.HistogramMetric {
	return done(u)
}
func (unfinished) NewAddsMetric(string) workqueue.CounterMetric      { return noMetric{} }
func (unfinished) NewLatencyMetric(string) workqueue.HistogramMetric { return noMetric{} }
func (unfinished) NewRetriesMetric(string) workqueue.CounterMetric   { return noMetric{} }
func (unfinished) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return noMetric{}
}
func (unfinished) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return noMetric{}
}

// taken is the depth gauge: a namespace queued is owed; one handed to a
// worker still is.
type taken unfinished

func (t taken) Inc() { t.n.Add(1) }
func (taken) Dec()   {}

// done observes a finished reconcile: the namespace is no longer owed.
type done unfinished

func (d done) Observe(float64) { d.n.Add(-1) }

type noMetric struct{}

func (noMetric) Inc()            {}
func (noMetric) Dec()            {}
func (noMetric) Set(float64)     {}
func (noMetric) Observe(float64) {}
