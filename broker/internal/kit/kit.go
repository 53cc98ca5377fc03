package kit

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/credbroker/credbroker/broker"

	"k8s.io/utils/clock"
)

// ExpiryWarnings is warnings (DefaultPATWarnings when nil) sorted longest
// first, as crossedWarning reads them, in a copy of the caller's.
func ExpiryWarnings(warnings []time.Duration) []time.Duration {
	if warnings == nil {
		return broker.DefaultPATWarnings()
	}
	sorted := slices.Clone(warnings)
	slices.SortFunc(sorted, func(a, b time.Duration) int { return int(b - a) })
	return sorted
}

// Backoff is the wait before retry n (from 0): floor doubled n times, at
// most ceiling, of which a random half ("equal jitter"), so that many
// clients failing at once do not retry at once.
func Backoff(n int, floor, ceiling time.Duration, jitter func() float64) time.Duration {
	d := ceiling
	if n < 30 && floor<<n < ceiling {
		d = floor << n
	}
	return d/2 + time.Duration(jitter()*float64(d/2))
}

func MinTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ChangeSet coalesces tenant changes: a burst of registrations is never
// dropped, and a tenant changed twice is read once.
type ChangeSet struct {
	mu   sync.Mutex
	ids  map[string]bool
	Wake chan struct{}
}

func NewChangeSet() ChangeSet {
	return ChangeSet{ids: map[string]bool{}, Wake: make(chan struct{}, 1)}
}

func (c *ChangeSet) Add(id string) {
	c.mu.Lock()
	c.ids[id] = true
	c.mu.Unlock()
	select {
	case c.Wake <- struct{}{}:
	default:
	}
}

func (c *ChangeSet) Take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.ids))
	for id := range c.ids {
		ids = append(ids, id)
	}
	clear(c.ids)
	slices.Sort(ids)
	return ids
}

// StepUntilDone calls step until ctx is done, again whenever wake fires
// and at the time step returned.
func StepUntilDone(ctx context.Context, clk clock.Clock, wake <-chan struct{}, step func(context.Context) time.Time) {
	for {
		next := step(ctx)
		wait := clk.NewTimer(max(next.Sub(clk.Now()), 0))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wake:
		case <-wait.C():
		}
		wait.Stop()
	}
}

// Signal wakes every waiter at once: wait returns a channel that notify
// closes.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// Guarded makes a call into another package (GitHub, a registry) and turns
// its panic into an error, logging the stack: a bug there fails one
// renewal or probe and the process goes on. It matters most inside
// singleflight.DoChan, whose panics nobody can recover.
func Guarded[T any](ctx context.Context, log *slog.Logger, what string, call func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, what+" panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	return call()
}

// ExpirySeverity is a warning's, critical at the last threshold.
func ExpirySeverity(last bool) broker.Severity {
	if last {
		return broker.SeverityCritical
	}
	return broker.SeverityWarning
}

// CrossedWarning is the nearest threshold (of warnings, sorted longest
// first) before expiresAt that now has passed, and whether it is the last;
// ok is false when none has, or nothing expires.
func CrossedWarning(expiresAt time.Time, warnings []time.Duration, now time.Time) (before time.Duration, last, ok bool) {
	if expiresAt.IsZero() {
		return 0, false, false
	}
	left := expiresAt.Sub(now)
	crossed := -1
	for i, before := range warnings {
		if left <= before {
			crossed = i
		}
	}
	if crossed < 0 {
		return 0, false, false
	}
	return warnings[crossed], crossed == len(warnings)-1, true
}
