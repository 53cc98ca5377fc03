package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// Review is the API server's answer about a token.
type Review struct {
	Authenticated bool
	User          string
	Groups        []string
	// Extra holds what the token is bound to: for a ServiceAccount token
	// bound to a Pod, authentication.kubernetes.io/pod-name, pod-uid and
	// node-name.
	Extra map[string][]string
}

// ReviewFunc asks the Kubernetes API server whether a bearer token is a
// valid ServiceAccount (or other) token for the audience, and whose. It is
// k8ssync's TokenReviewer: auth imports no client-go.
type ReviewFunc func(ctx context.Context, token string) (Review, error)

// Limits of the reviews a TokenReview makes: every unknown bearer token
// costs the API server a request, so a flood of made-up tokens is refused
// here (ErrBusy), at once, before it reaches the API server.
const (
	ReviewsPerSecond = 20
	ReviewBurst      = 40
	ReviewsInFlight  = 16
)

// ErrTokenRejected is a token the API server does not accept for the
// audience.
var ErrTokenRejected = errors.New("the API server does not accept the bearer token")

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
	return NewTokenReviewLimited(review, ttl, ReviewsPerSecond, ReviewBurst, ReviewsInFlight)
}

// NewTokenReviewLimited is NewTokenReview with limits of its own: the
// credential provider's reviews come with Pod starts, in bursts a rollout
// makes, and get more room than API callers'.
func NewTokenReviewLimited(review ReviewFunc, ttl time.Duration, perSecond float64, burst, inflight int) *TokenReview {
	return &TokenReview{review: review, ttl: ttl, clock: clock.RealClock{}, cache: map[string]reviewAnswer{},
		limiter: rate.NewLimiter(rate.Limit(perSecond), burst), inflight: make(chan struct{}, inflight)}
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
		rev, err := r.review(ctx, req.BearerToken)
		<-r.inflight
		if err != nil {
			return Identity{}, true, fmt.Errorf("token review: %w", err)
		}
		ans = reviewAnswer{id: Identity{Name: rev.User, Groups: rev.Groups, Extra: rev.Extra, Method: "token-review", TokenHash: tokenPrefix(req.BearerToken)},
			ok: rev.Authenticated, expires: now.Add(r.ttl)}
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
		return Identity{}, true, ErrTokenRejected
	}
	return ans.id, true, nil
}
