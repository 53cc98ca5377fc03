package server

import (
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/auth"
)

// limits keeps a token bucket per method and caller (auth.Buckets).
type limits struct{ buckets *auth.Buckets }

// pruneEvery bounds how often full buckets are looked for.
const pruneEvery = auth.PruneEvery

func newLimits(clk clock.PassiveClock) *limits { return &limits{buckets: auth.NewBuckets(clk)} }

// allow takes a token for caller's call of method, if the method is
// throttled; false means the caller must slow down.
func (l *limits) allow(method, caller string, limit auth.Limit) bool {
	return l.buckets.Allow(method+"\x00"+caller, limit)
}

// size is how many buckets are kept.
func (l *limits) size() int { return l.buckets.Len() }
