package registrytoken

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/credbroker/credbroker/broker"
)

// caller is who asks: a ServiceAccount, or a namespace's robot (no
// ServiceAccount); the zero value is anonymous. The rest says what the
// credential was, which a refresh token carries so that each refresh
// checks it again: the Pod a ServiceAccount token was bound to, a robot's
// period, and until when the credential itself was good.
type caller struct {
	namespace, serviceAccount string
	pod, podUID               string
	robotEpoch                int64
	until                     time.Time
}

func (c caller) subject() string {
	switch {
	case c.namespace == "":
		return ""
	case c.serviceAccount == "":
		return robotPrefix + c.namespace
	}
	return "system:serviceaccount:" + c.namespace + ":" + c.serviceAccount
}

// authenticateBasic authenticates the caller of a GET: no Authorization is
// anonymous; Basic carries a robot's password, or a ServiceAccount token as
// the password under any other user name.
func (s *Service) authenticateBasic(r *http.Request) (caller, error) {
	if r.Header.Get("Authorization") == "" {
		return caller{}, nil
	}
	user, password, ok := r.BasicAuth()
	if !ok || user == "" || password == "" {
		return caller{}, &requestError{status: http.StatusUnauthorized, code: "invalid_client", descr: "want Basic credentials: a namespace's robot, or any user name with a ServiceAccount token as the password"}
	}
	return s.authenticatePassword(r.Context(), user, password)
}

// authenticatePassword authenticates the caller of a user name and
// password: a robot's, or a ServiceAccount token under any other name.
func (s *Service) authenticatePassword(ctx context.Context, user, password string) (caller, error) {
	if !isRobot(user) {
		return s.authenticateServiceAccount(ctx, password)
	}
	if s.cfg.Robots != nil {
		if ns, epoch, ok := s.cfg.Robots.verify(user, password); ok {
			return caller{namespace: ns, robotEpoch: epoch, until: s.cfg.Robots.validUntil(epoch)}, nil
		}
	}
	return caller{}, &requestError{status: http.StatusUnauthorized, code: "invalid_grant", descr: "not a robot credential of this period or the one before"}
}

// authenticateServiceAccount authenticates the caller of a ServiceAccount
// token bound to a Pod (Pods: a TokenReview for the service's audience).
func (s *Service) authenticateServiceAccount(ctx context.Context, token string) (caller, error) {
	pod, err := s.pods.PodOf(ctx, token)
	var d *broker.DeniedError
	switch {
	case errors.As(err, &d):
		return caller{}, &requestError{status: http.StatusUnauthorized, code: "invalid_grant", descr: d.Msg}
	case err != nil:
		return caller{}, err
	}
	return caller{namespace: pod.Namespace, serviceAccount: pod.ServiceAccount, pod: pod.Pod, podUID: pod.PodUID, until: expiryOf(token)}, nil
}

// expiryOf is when a ServiceAccount token the API server just accepted
// expires, read without checking its signature (the review did); zero if
// it says none, as only tokens not bound to a Pod do.
func expiryOf(token string) time.Time {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA})
	var claims jwt.Claims
	if err != nil || tok.UnsafeClaimsWithoutVerification(&claims) != nil || claims.Expiry == nil {
		return time.Time{}
	}
	return claims.Expiry.Time()
}
