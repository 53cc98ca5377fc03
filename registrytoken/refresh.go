package registrytoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/credbroker/credbroker/broker"
)

// refreshAudience marks a refresh token: the registry never takes it, its
// audience being the service's name with a suffix.
func (s *Service) refreshAudience() string { return s.cfg.Service + "#refresh" }

// refreshClaims are a refresh token's: the caller, and what its
// credential was (the Pod a ServiceAccount token was bound to, or a
// robot's period) and until when it was good, which every refresh checks
// again. A refresh token is only ever as good as the credential it was
// obtained with: it expires with it, and a refresh never extends it.
type refreshClaims struct {
	jwt.Claims
	Pod             string `json:"pod,omitempty"`
	PodUID          string `json:"podUID,omitempty"`
	RobotEpoch      int64  `json:"robotEpoch,omitempty"`
	CredentialUntil int64  `json:"credentialUntil"`
}

// refreshable reports whether c may have a refresh token: an
// authenticated caller whose credential a refresh can check again.
func (s *Service) refreshable(c caller) bool {
	switch {
	case c.namespace == "" || c.until.IsZero():
		return false // anonymous, or a credential of no known end
	case c.serviceAccount == "":
		return s.cfg.Robots != nil
	}
	return s.cfg.BoundPods != nil && c.pod != ""
}

func (s *Service) refreshToken(c caller, now time.Time) (string, error) {
	exp := now.Add(s.cfg.RefreshTTL)
	if c.until.Before(exp) {
		exp = c.until
	}
	claims := refreshClaims{Claims: jwt.Claims{Issuer: s.cfg.Issuer, Subject: c.subject(), Audience: jwt.Audience{s.refreshAudience()},
		Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now), ID: newID()},
		Pod: c.pod, PodUID: c.podUID, RobotEpoch: c.robotEpoch, CredentialUntil: c.until.Unix()}
	token, err := jwt.Signed(s.keys.signing).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign a refresh token: %w", err)
	}
	return token, nil
}

// authenticateRefresh authenticates the caller of a refresh token: signed
// by one of the keys, for the refresh audience, not expired, and its
// credential still good: a
// robot's period not over, the Pod a ServiceAccount token was bound to and
// its ServiceAccount still there. What it grants is decided anew.
func (s *Service) authenticateRefresh(ctx context.Context, raw string) (caller, error) {
	invalid := func(why string) error {
		return &requestError{status: http.StatusBadRequest, code: "invalid_grant", descr: why}
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return caller{}, invalid("the refresh token is not one of this service's, or expired")
	}
	var claims refreshClaims
	verified := false
	for _, key := range s.keys.JWKS().Keys {
		if tok.Claims(key.Key, &claims) == nil {
			verified = true
			break
		}
	}
	now := s.cfg.Clock.Now()
	if !verified || claims.ValidateWithLeeway(jwt.Expected{Issuer: s.cfg.Issuer, AnyAudience: jwt.Audience{s.refreshAudience()}, Time: now}, 0) != nil ||
		claims.CredentialUntil == 0 || !now.Before(time.Unix(claims.CredentialUntil, 0)) {
		return caller{}, invalid("the refresh token is not one of this service's, or expired")
	}
	until := time.Unix(claims.CredentialUntil, 0)
	if ns, ok := strings.CutPrefix(claims.Subject, robotPrefix); ok {
		if s.cfg.Robots == nil || !s.cfg.Robots.current(claims.RobotEpoch) {
			return caller{}, invalid("the robot credential this refresh token was obtained with has rotated out")
		}
		return caller{namespace: ns, robotEpoch: claims.RobotEpoch, until: until}, nil
	}
	ns, sa, ok := strings.Cut(strings.TrimPrefix(claims.Subject, "system:serviceaccount:"), ":")
	if !ok || !strings.HasPrefix(claims.Subject, "system:serviceaccount:") || claims.Pod == "" || s.cfg.BoundPods == nil {
		return caller{}, invalid("the refresh token is not one of this service's, or expired")
	}
	c := caller{namespace: ns, serviceAccount: sa, pod: claims.Pod, podUID: claims.PodUID, until: until}
	err = s.stillBound(ctx, broker.PodIdentity{Namespace: ns, ServiceAccount: sa, Pod: claims.Pod, PodUID: claims.PodUID})
	var d *broker.DeniedError
	switch {
	case errors.As(err, &d):
		return caller{}, invalid("the credential this refresh token was obtained with is gone: " + d.Msg)
	case err != nil:
		return caller{}, fmt.Errorf("check the Pod %s/%s of a refresh token: %w", ns, claims.Pod, err)
	}
	return c, nil
}

// stillBound asks BoundPods about pod, or answers what it said less than
// PodCheckTTL ago.
func (s *Service) stillBound(ctx context.Context, pod broker.PodIdentity) error {
	key := pod.Namespace + "/" + pod.Pod + "/" + pod.PodUID + "/" + pod.ServiceAccount
	if v, ok := s.checked.Get(key); ok {
		err, _ := v.(error)
		return err
	}
	err := s.cfg.BoundPods.StillBound(ctx, pod)
	var d *broker.DeniedError
	if err == nil || errors.As(err, &d) { // not "cannot tell now"
		s.checked.Add(key, err, PodCheckTTL)
	}
	return err
}
