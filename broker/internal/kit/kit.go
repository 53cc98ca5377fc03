package kit

import (
	"context"
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

// ChangeSet coalesces tenant changes: a burst of registrations is never
// dropped, and a tenant changed twice is read once.
type ChangeSet struct {
	mu   sync.Mutex
	ids  map[string]bool
	Wake chan struct{}
}

// NewChangeSet returns an empty ChangeSet.
func NewChangeSet() ChangeSet {
	return ChangeSet{ids: map[string]bool{}, Wake: make(chan struct{}, 1)}
}

// Add records a change of id and wakes the reader.
func (c *ChangeSet) Add(id string) {
	c.mu.Lock()
	c.ids[id] = true
	c.mu.Unlock()
	select {
	case c.Wake <- struct{}{}:
	default:
	}
}

// Take returns the ids changed since the last Take, sorted, and forgets
// them.
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
