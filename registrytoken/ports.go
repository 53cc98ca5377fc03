package registrytoken

import (
	"context"

	"github.com/credbroker/credbroker/broker"
)

// Pods says whose Pod a ServiceAccount token is (auth.PodTokens: a
// TokenReview for the service's audience).
type Pods interface {
	PodOf(ctx context.Context, token string) (broker.PodIdentity, error)
}

// BoundPods says whether a Pod a ServiceAccount token was bound to, and
// its ServiceAccount, are still there (k8ssync.BoundPods: the API
// server). A refresh token outlives the review of the token it was
// obtained with, so each refresh asks again: nil if both are, a
// *broker.DeniedError if either is gone or replaced, any other error if it
// cannot tell now.
type BoundPods interface {
	StillBound(ctx context.Context, pod broker.PodIdentity) error
}
