package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/credbroker/credbroker/broker"
)

// The user.extra keys the API server puts in the TokenReview of a token
// bound to a Pod.
const (
	extraPodName  = "authentication.kubernetes.io/pod-name"
	extraPodUID   = "authentication.kubernetes.io/pod-uid"
	extraNodeName = "authentication.kubernetes.io/node-name"
)

// Limits of the credential provider's reviews: every Pod start on every
// node brings a token not seen before, so a rollout is a burst; the kubelet
// then caches the answer, so the steady rate is low. Answers are kept for
// PodTokenTTL: a Pod deleted meanwhile keeps its grant that long, well
// within the provider's cache duration.
const (
	PodReviewsPerSecond = 200
	PodReviewBurst      = 400
	PodReviewsInFlight  = 64
	PodTokenTTL         = 30 * time.Second
)

// PodTokens authenticates Pod-bound ServiceAccount tokens: those the
// kubelet requests for the credential provider, and those Pods present to
// the registry token service as a password. A token must be valid for the
// ReviewFunc's audience, issued to a ServiceAccount and bound to a Pod. It
// implements api.Pods and registrytoken.Pods.
type PodTokens struct {
	review *TokenReview
}

// NewPodTokens returns PodTokens that review with review, after checks
// (TokenChecks: with an Audience and Keys, a token that is not the
// cluster's for that audience is refused without a review, and only what
// a signature cannot tell, that the Pod still exists, is asked of the API
// server).
func NewPodTokens(review ReviewFunc, checks TokenChecks) *PodTokens {
	r := NewTokenReviewLimited(review, PodTokenTTL, PodReviewsPerSecond, PodReviewBurst, PodReviewsInFlight)
	r.setChecks(checks)
	return &PodTokens{review: r}
}

// PodOf implements api.Pods. The caller's address, for the limit of
// reviews per caller, comes from ctx (WithPeer).
func (p *PodTokens) PodOf(ctx context.Context, token string) (broker.PodIdentity, error) {
	id, _, err := p.review.Authenticate(ctx, Request{BearerToken: token, Peer: PeerOf(ctx)})
	switch {
	case errors.Is(err, ErrTokenRejected):
		// The reason says what of the token is wrong (its shape, issuer,
		// audience, expiry, signature), never the token.
		return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenRejected,
			Msg: "the ServiceAccount token is not the cluster's for credbroker's audience (" + err.Error() + ")"}
	case errors.Is(err, ErrBusy):
		return broker.PodIdentity{}, fmt.Errorf("review the ServiceAccount token: %w: %w", broker.ErrUnavailable, err)
	case err != nil: // the API server failing
		return broker.PodIdentity{}, fmt.Errorf("review the ServiceAccount token: %w: %w", broker.ErrUnavailable, err)
	}
	ns, sa, ok := serviceAccountOf(id.Name)
	if !ok {
		return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenRejected, Msg: "the token is not a ServiceAccount's"}
	}
	pod := broker.PodIdentity{Namespace: ns, ServiceAccount: sa, Pod: first(id.Extra[extraPodName]), PodUID: first(id.Extra[extraPodUID]),
		Node: first(id.Extra[extraNodeName])}
	if pod.Pod == "" {
		return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenNotPodBound,
			Msg: "the ServiceAccount token of " + ns + "/" + sa + " is bound to no Pod: the kubelet requests a Pod-bound one (tokenAttributes)"}
	}
	return pod, nil
}

// serviceAccountOf splits "system:serviceaccount:<namespace>:<name>".
func serviceAccountOf(user string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
