package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// Buckets keeps a token bucket per key (a method and caller, a caller's
// address). A bucket that has filled up again is dropped (a new one starts
// full: nothing is lost), so the map holds only keys used lately, however
// many there were.
type Buckets struct {
	clock clock.PassiveClock

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastPrune time.Time
}

// PruneEvery bounds how often full buckets are looked for.
const PruneEvery = time.Minute

// NewBuckets returns empty Buckets refilled by clk.
func NewBuckets(clk clock.PassiveClock) *Buckets {
	return &Buckets{clock: clk, buckets: map[string]*rate.Limiter{}, lastPrune: clk.Now()}
}

// Allow takes a token from key's bucket of limit; false means the caller
// must slow down. A zero limit allows everything.
func (b *Buckets) Allow(key string, limit Limit) bool {
	if limit.Burst == 0 {
		return true
	}
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastPrune) >= PruneEvery {
		for k, l := range b.buckets {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(b.buckets, k)
			}
		}
		b.lastPrune = now
	}
	l := b.buckets[key]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(limit.PerSecond), limit.Burst)
		b.buckets[key] = l
	}
	return l.AllowN(now, 1)
}

// Len is how many buckets are kept.
func (b *Buckets) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buckets)
}
