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

// ErrTokenRejected is a token not accepted for the audience: by the API
// server, or, for what cannot be the cluster's token for it, by the
// checks before any review (TokenChecks).
var ErrTokenRejected = errors.New("token rejected")

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
	checks   TokenChecks
	peers    *Buckets

	mu    sync.Mutex
	cache map[string]reviewAnswer
}

type reviewAnswer struct {
	id      Identity
	ok      bool
	expires time.Time
}

// TokenChecks are what a TokenReview judges itself, at no cost to the API
// server, before it spends a review: the review budget is shared by every
// caller, and without them anyone who can reach credbroker could spend it
// all on made-up tokens and leave real callers refused as busy.
type TokenChecks struct {
	// Audience, when set, admits only what could be a ServiceAccount token
	// for it: a JWT, issued by the cluster (once Keys know its issuer),
	// for Audience, not expired. Anything else is ErrTokenRejected without
	// a review.
	Audience string
	// Keys, when set (with Audience), verify the token's signature
	// locally: a token they refute is ErrTokenRejected without a review.
	// Only while they cannot be fetched are tokens reviewed unverified.
	Keys *ServiceAccountKeys
	// PerPeer limits the reviews each caller address (Request.Peer) may
	// cause with tokens that were not verified locally, so that one
	// caller cannot spend the whole budget. Zero: no such limit.
	PerPeer Limit
}

// DefaultPeerReviews is the default TokenChecks.PerPeer: a node starting
// Pods makes bursts of new tokens, but those are verified locally and not
// counted here.
var DefaultPeerReviews = Limit{PerSecond: 5, Burst: 20}

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

// NewServiceAccountTokenReview is NewTokenReview for ServiceAccount tokens
// only, judged by checks before any review.
func NewServiceAccountTokenReview(review ReviewFunc, ttl time.Duration, checks TokenChecks) *TokenReview {
	r := NewTokenReview(review, ttl)
	r.setChecks(checks)
	return r
}

func (r *TokenReview) setChecks(checks TokenChecks) {
	r.checks, r.peers = checks, NewBuckets(r.clock)
}

// precheck judges token before a review: rejected (ErrTokenRejected)
// when it cannot be a ServiceAccount token for the audience or the
// cluster's keys refute it; verified when they vouch for it.
func (r *TokenReview) precheck(ctx context.Context, token string, now time.Time) (verified bool, err error) {
	c := r.checks
	if c.Audience == "" {
		return false, nil
	}
	issuer := ""
	if c.Keys != nil {
		issuer = c.Keys.Issuer()
	}
	if why := couldBeServiceAccountToken(token, issuer, c.Audience, now); why != "" {
		return false, fmt.Errorf("%w: %s", ErrTokenRejected, why)
	}
	if c.Keys == nil {
		return false, nil
	}
	switch _, err := c.Keys.Verify(ctx, token, c.Audience); {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrKeysUnavailable):
		return false, nil
	default:
		return false, err
	}
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
		verified, err := r.precheck(ctx, req.BearerToken, now)
		if err != nil {
			return Identity{}, true, err
		}
		if !verified && r.peers != nil && req.Peer != "" && !r.peers.Allow(req.Peer, r.checks.PerPeer) {
			return Identity{}, true, ErrBusy
		}
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
		return Identity{}, true, fmt.Errorf("%w: the API server does not accept it (expired, its Pod or ServiceAccount gone, or for another audience)", ErrTokenRejected)
	}
	return ans.id, true, nil
}
