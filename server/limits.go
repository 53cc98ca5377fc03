package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/auth"
)

// limits keeps a token bucket per method and caller. A bucket that has
// filled up again is dropped (a new one starts full: nothing is lost), so
// the map holds only callers that called lately, however many there were.
type limits struct {
	clock clock.PassiveClock

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter // by method and caller
	lastPrune time.Time
}

// pruneEvery bounds how often full buckets are looked for.
const pruneEvery = time.Minute

func newLimits(clk clock.PassiveClock) *limits {
	return &limits{clock: clk, buckets: map[string]*rate.Limiter{}, lastPrune: clk.Now()}
}

// allow takes a token for caller's call of method, if the method is
// throttled; false means the caller must slow down.
func (l *limits) allow(method, caller string, limit auth.Limit) bool {
	if limit.Burst == 0 {
		return true
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastPrune) >= pruneEvery {
		for key, b := range l.buckets {
			if b.TokensAt(now) >= float64(b.Burst()) {
				delete(l.buckets, key)
			}
		}
		l.lastPrune = now
	}
	key := method + "\x00" + caller
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(limit.PerSecond), limit.Burst)
		l.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

// size is how many buckets are kept.
func (l *limits) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
