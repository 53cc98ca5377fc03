package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// ReviewFunc asks the Kubernetes API server whether a bearer token is a
// valid ServiceAccount (or other) token for the audience, and whose. It is
// k8ssync's TokenReviewer: auth imports no client-go.
type ReviewFunc func(ctx context.Context, token string) (user string, groups []string, authenticated bool, err error)

// Limits of the reviews a TokenReview makes: every unknown bearer token
// costs the API server a request, so a flood of made-up tokens is refused
// here (ErrBusy), at once, before it reaches the API server.
const (
	ReviewsPerSecond = 20
	ReviewBurst      = 40
	ReviewsInFlight  = 16
)

// TokenReview authenticates bearer tokens with the Kubernetes TokenReview
// API. It is the last resort of a chain: it recognises every bearer token.
// Answers, good and bad, are cached for a short time by the token's hash, so
// that a client polling the API does not cost a review per call; reviews
// beyond ReviewsPerSecond or ReviewsInFlight are refused with ErrBusy.
type TokenReview struct {
	review   ReviewFunc
	ttl      time.Duration
	clock    clock.PassiveClock
	limiter  *rate.Limiter
	inflight chan struct{}

	mu    sync.Mutex
	cache map[string]reviewAnswer
}

type reviewAnswer struct {
	id      Identity
	ok      bool
	expires time.Time
}

// NewTokenReview returns a TokenReview authenticator caching answers for ttl.
func NewTokenReview(review ReviewFunc, ttl time.Duration) *TokenReview {
	return &TokenReview{review: review, ttl: ttl, clock: clock.RealClock{}, cache: map[string]reviewAnswer{},
		limiter: rate.NewLimiter(ReviewsPerSecond, ReviewBurst), inflight: make(chan struct{}, ReviewsInFlight)}
}

// Authenticate implements Authenticator.
func (r *TokenReview) Authenticate(ctx context.Context, req Request) (Identity, bool, error) {
	if req.BearerToken == "" {
		return Identity{}, false, nil
	}
	key := TokenHash(req.BearerToken)
	now := r.clock.Now()
	r.mu.Lock()
	ans, hit := r.cache[key]
	r.mu.Unlock()
	if !hit || now.After(ans.expires) {
		if !r.limiter.AllowN(now, 1) {
			return Identity{}, true, ErrBusy
		}
		select {
		case r.inflight <- struct{}{}:
		default:
			return Identity{}, true, ErrBusy
		}
		user, groups, ok, err := r.review(ctx, req.BearerToken)
		<-r.inflight
		if err != nil {
			return Identity{}, true, fmt.Errorf("token review: %w", err)
		}
		ans = reviewAnswer{id: Identity{Name: user, Groups: groups, Method: "token-review", TokenHash: tokenPrefix(req.BearerToken)},
			ok: ok, expires: now.Add(r.ttl)}
		r.mu.Lock()
		for k, a := range r.cache { // keep the cache small: drop what expired
			if now.After(a.expires) {
				delete(r.cache, k)
			}
		}
		r.cache[key] = ans
		r.mu.Unlock()
	}
	if !ans.ok {
		return Identity{}, true, fmt.Errorf("the API server does not accept the bearer token")
	}
	return ans.id, true, nil
}
