package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"
)

// Issuer is the cluster's ServiceAccount token issuer as the API server
// publishes it: the "issuer" of /.well-known/openid-configuration and the
// JSON Web Key Set of /openid/v1/jwks.
type Issuer struct {
	URL  string
	JWKS []byte
}

// IssuerSource fetches the Issuer from the API server. k8ssync's
// ServiceAccountIssuer is one: auth imports no client-go.
type IssuerSource func(ctx context.Context) (Issuer, error)

// How often the cluster's keys are fetched: at most every keysMinRefresh
// (a token signed by a key not seen yet, as after a key rotation, asks
// again, and a flood of tokens with made-up key ids must not become a
// flood of JWKS requests), at least every keysMaxAge (a key the API server
// dropped stops verifying). A failed fetch is retried after a backoff.
const (
	keysMinRefresh = 30 * time.Second
	keysMaxAge     = 10 * time.Minute
	keysTimeout    = 10 * time.Second
)

// Leeway on a token's expiry and not-before: the API server's and
// credbroker's clocks may differ a little.
const tokenLeeway = time.Minute

// ErrKeysUnavailable means the cluster's keys could not be fetched: a
// token can then only be judged by TokenReview.
var ErrKeysUnavailable = errors.New("the cluster's ServiceAccount keys are not available")

// ServiceAccountKeys verifies ServiceAccount tokens locally, against the
// keys the API server publishes for its issuer: a forged or foreign token
// is refused without costing the API server anything. What a signature
// cannot tell (that the Pod a token is bound to still exists) is left to
// TokenReview.
type ServiceAccountKeys struct {
	source IssuerSource
	clock  clock.PassiveClock
	flight singleflight.Group

	mu       sync.Mutex
	issuer   string
	keys     []jose.JSONWebKey
	verifier func(audience string) *oidc.IDTokenVerifier
	fetched  time.Time // of the keys held
	tried    time.Time // last fetch, good or bad
	lastErr  error
}

// NewServiceAccountKeys returns keys fetched from source at first use.
func NewServiceAccountKeys(source IssuerSource, clk clock.PassiveClock) *ServiceAccountKeys {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &ServiceAccountKeys{source: source, clock: clk}
}

// ServiceAccountClaims is what a verified ServiceAccount token says.
type ServiceAccountClaims struct {
	Namespace, ServiceAccount string
	// Pod and PodUID name the Pod the token is bound to, Node the node
	// that Pod runs on (the API server adds it to Pod-bound tokens).
	Pod, PodUID, Node string
}

// k8sClaims is the "kubernetes.io" claim of a ServiceAccount token.
type k8sClaims struct {
	Namespace      string `json:"namespace"`
	ServiceAccount struct {
		Name string `json:"name"`
	} `json:"serviceaccount"`
	Pod *struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"pod"`
	Node *struct {
		Name string `json:"name"`
	} `json:"node"`
}

// Verify checks token's signature against the cluster's keys, and its
// issuer, audience and expiry. A token that fails is ErrTokenRejected; one
// that cannot be checked now ErrKeysUnavailable.
func (k *ServiceAccountKeys) Verify(ctx context.Context, token, audience string) (ServiceAccountClaims, error) {
	kid, err := keyID(token)
	if err != nil {
		return ServiceAccountClaims{}, fmt.Errorf("%w: %w", ErrTokenRejected, err)
	}
	issuer, verifier, err := k.current(ctx, kid)
	if err != nil {
		return ServiceAccountClaims{}, err
	}
	if iss := unverifiedIssuer(token); iss != issuer {
		return ServiceAccountClaims{}, fmt.Errorf("%w: issued by %q, not by the cluster (%q)", ErrTokenRejected, iss, issuer)
	}
	tok, err := verifier(audience).Verify(ctx, token)
	if err != nil {
		return ServiceAccountClaims{}, fmt.Errorf("%w: %w", ErrTokenRejected, err)
	}
	var claims struct {
		K8s *k8sClaims `json:"kubernetes.io"`
	}
	if err := tok.Claims(&claims); err != nil || claims.K8s == nil || claims.K8s.Namespace == "" || claims.K8s.ServiceAccount.Name == "" {
		return ServiceAccountClaims{}, fmt.Errorf("%w: not a ServiceAccount's token", ErrTokenRejected)
	}
	c := ServiceAccountClaims{Namespace: claims.K8s.Namespace, ServiceAccount: claims.K8s.ServiceAccount.Name}
	if p := claims.K8s.Pod; p != nil {
		c.Pod, c.PodUID = p.Name, p.UID
	}
	if n := claims.K8s.Node; n != nil {
		c.Node = n.Name
	}
	return c, nil
}

// current returns the issuer and a verifier holding the key kid names,
// fetching the keys again when they are old or lack kid (no more often
// than keysMinRefresh either way).
func (k *ServiceAccountKeys) current(ctx context.Context, kid string) (string, func(string) *oidc.IDTokenVerifier, error) {
	now := k.clock.Now()
	k.mu.Lock()
	held := k.verifier != nil
	stale := !held || now.Sub(k.fetched) >= keysMaxAge || !hasKey(k.keys, kid)
	due := now.Sub(k.tried) >= keysMinRefresh || k.tried.IsZero()
	lastErr := k.lastErr
	k.mu.Unlock()
	if stale && due {
		done := k.flight.DoChan("fetch", func() (any, error) { return nil, k.fetch() })
		select {
		case <-done:
		case <-ctx.Done():
			return "", nil, fmt.Errorf("fetch the cluster's ServiceAccount keys: %w", ctx.Err())
		}
		k.mu.Lock()
		held, lastErr = k.verifier != nil, k.lastErr
		k.mu.Unlock()
	}
	if !held {
		if lastErr == nil {
			lastErr = errors.New("not fetched yet")
		}
		return "", nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.issuer, k.verifier, nil
}

func (k *ServiceAccountKeys) fetch() error {
	// The fetch serves every waiting caller: it runs on a context of its
	// own, bounded by keysTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), keysTimeout)
	defer cancel()
	iss, err := k.source(ctx)
	var set jose.JSONWebKeySet
	if err == nil {
		err = json.Unmarshal(iss.JWKS, &set)
	}
	if err == nil && (iss.URL == "" || len(set.Keys) == 0) {
		err = errors.New("the API server publishes no issuer or no keys")
	}
	now := k.clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tried = now
	if err != nil {
		// Keys held before stay: a failed refresh does not stop tokens
		// signed by them from verifying until keysMaxAge twice over.
		k.lastErr = fmt.Errorf("fetch the cluster's ServiceAccount keys: %w", err)
		if k.verifier != nil && now.Sub(k.fetched) >= 2*keysMaxAge {
			k.verifier = nil
		}
		return k.lastErr
	}
	keys := &oidc.StaticKeySet{}
	for _, key := range set.Keys {
		if key.Valid() && key.IsPublic() {
			keys.PublicKeys = append(keys.PublicKeys, key.Key)
		}
	}
	issuer, clk := iss.URL, k.clock
	k.issuer, k.keys, k.fetched, k.lastErr = issuer, set.Keys, now, nil
	k.verifier = func(audience string) *oidc.IDTokenVerifier {
		return oidc.NewVerifier(issuer, keys, &oidc.Config{ClientID: audience, Now: func() time.Time { return clk.Now().Add(-tokenLeeway) },
			SupportedSigningAlgs: []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512}})
	}
	return nil
}

func hasKey(keys []jose.JSONWebKey, kid string) bool {
	return slices.ContainsFunc(keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
}

// keyID reads a JWT's "kid" header, and refuses what is not a JWT.
func keyID(token string) (string, error) {
	header, _, ok := strings.Cut(token, ".")
	if !ok || !looksLikeJWT(token) {
		return "", errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return "", errors.New("not a JWT")
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", errors.New("not a JWT")
	}
	return h.Kid, nil
}

// unverifiedClaims are the claims of a JWT read without verifying it:
// enough to refuse, at no cost, what cannot be a ServiceAccount token
// for an audience.
type unverifiedClaims struct {
	Iss string          `json:"iss"`
	Aud json.RawMessage `json:"aud"`
	Exp *float64        `json:"exp"`
}

// couldBeServiceAccountToken says why token cannot be a ServiceAccount
// token of issuer ("" when not known) for audience, now; "" when it could.
// It verifies nothing: a token it passes is still to be verified.
func couldBeServiceAccountToken(token, issuer, audience string, now time.Time) string {
	if !looksLikeJWT(token) {
		return "not a JWT"
	}
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "not a JWT"
	}
	var c unverifiedClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return "not a JWT"
	}
	var auds []string
	if json.Unmarshal(c.Aud, &auds) != nil {
		var one string
		if json.Unmarshal(c.Aud, &one) == nil {
			auds = []string{one}
		}
	}
	switch {
	case issuer != "" && c.Iss != issuer:
		return "not issued by the cluster"
	case audience != "" && !slices.Contains(auds, audience):
		return "issued for another audience"
	case c.Exp == nil:
		return "no expiry"
	case now.After(time.Unix(int64(*c.Exp), 0).Add(tokenLeeway)):
		return "expired"
	}
	return ""
}

// Issuer returns the issuer of the keys held, "" when none are.
func (k *ServiceAccountKeys) Issuer() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.issuer
}
