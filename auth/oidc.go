package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"
)

// OIDCConfig names an OpenID Connect issuer whose ID tokens are accepted.
type OIDCConfig struct {
	IssuerURL string
	// ClientID is the audience the tokens must carry.
	ClientID string
	// UsernameClaim names the caller ("sub" when empty); GroupsClaim, if
	// set, holds the caller's groups.
	UsernameClaim string
	GroupsClaim   string
	// UsernamePrefix and GroupsPrefix are put before every name and group
	// the issuer vouches for (the flags default both to "oidc:"), so that
	// an issuer's user named like a ServiceAccount, a token-file entry or a
	// group is not taken for one: names mean one identity.
	UsernamePrefix string
	GroupsPrefix   string
}

// OIDC discovery and key fetching limits.
const (
	// oidcTimeout bounds every request to the issuer: one that accepts the
	// connection and never answers must not hold callers.
	oidcTimeout = 10 * time.Second
	// Discovery that failed is not tried again for a backoff that doubles
	// from oidcMinBackoff to oidcMaxBackoff, so that a down issuer is not
	// asked once per request.
	oidcMinBackoff = time.Second
	oidcMaxBackoff = time.Minute
)

// OIDC authenticates ID tokens of one issuer, verified against its JWKS
// (discovered from the issuer at the first use, so that a briefly
// unreachable issuer does not stop credbroker from starting).
type OIDC struct {
	cfg    OIDCConfig
	client *http.Client
	clock  clock.PassiveClock
	flight singleflight.Group

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	failures int
	retryAt  time.Time // no discovery before, after a failure
	lastErr  error
}

// NewOIDC returns an OIDC authenticator.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.IssuerURL == "" || cfg.ClientID == "" {
		return nil, errors.New("OIDC needs an issuer URL and a client id")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "sub"
	}
	return &OIDC{cfg: cfg, client: &http.Client{Timeout: oidcTimeout}, clock: clock.RealClock{}}, nil
}

// verifierFor returns the issuer's verifier, discovering it first if need
// be. Discovery holds no lock: it runs once for all callers (single
// flight) on a context of its own, and each caller waits on its own.
func (o *OIDC) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	verifier, retryAt, lastErr := o.verifier, o.retryAt, o.lastErr
	o.mu.Unlock()
	if verifier != nil {
		return verifier, nil
	}
	if now := o.clock.Now(); now.Before(retryAt) {
		return nil, fmt.Errorf("%w (not tried again for %s)", lastErr, retryAt.Sub(now).Round(time.Second))
	}
	done := o.flight.DoChan("discover", func() (any, error) { return nil, o.discover() })
	select {
	case res := <-done:
		if res.Err != nil {
			return nil, res.Err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", o.cfg.IssuerURL, ctx.Err())
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.verifier, nil
}

func (o *OIDC) discover() error {
	// The provider keeps this context for fetching keys later: it must
	// outlive the discovery, and its client bounds every request.
	provider, err := oidc.NewProvider(oidc.ClientContext(context.Background(), o.client), o.cfg.IssuerURL)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.failures++
		o.lastErr = fmt.Errorf("discover OIDC issuer %s: %w", o.cfg.IssuerURL, err)
		o.retryAt = o.clock.Now().Add(min(oidcMinBackoff<<min(o.failures-1, 10), oidcMaxBackoff))
		return o.lastErr
	}
	o.verifier = provider.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	o.failures, o.lastErr = 0, nil
	return nil
}

// Authenticate implements Authenticator. It recognises JWTs whose "iss" is
// its issuer; other tokens are left to the next authenticator.
func (o *OIDC) Authenticate(ctx context.Context, req Request) (Identity, bool, error) {
	if !looksLikeJWT(req.BearerToken) || unverifiedIssuer(req.BearerToken) != o.cfg.IssuerURL {
		return Identity{}, false, nil
	}
	verifier, err := o.verifierFor(ctx)
	if err != nil {
		return Identity{}, true, err
	}
	tok, err := verifier.Verify(ctx, req.BearerToken)
	if err != nil {
		return Identity{}, true, fmt.Errorf("OIDC token: %w", err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, true, fmt.Errorf("OIDC token claims: %w", err)
	}
	name, _ := claims[o.cfg.UsernameClaim].(string)
	if name == "" {
		return Identity{}, true, fmt.Errorf("OIDC token has no %q claim", o.cfg.UsernameClaim)
	}
	id := Identity{Name: o.cfg.UsernamePrefix + name, Method: "oidc", TokenHash: tokenPrefix(req.BearerToken)}
	if o.cfg.GroupsClaim != "" {
		switch g := claims[o.cfg.GroupsClaim].(type) {
		case string:
			id.Groups = []string{o.cfg.GroupsPrefix + g}
		case []any:
			for _, v := range g {
				if s, ok := v.(string); ok {
					id.Groups = append(id.Groups, o.cfg.GroupsPrefix+s)
				}
			}
		}
	}
	return id, true, nil
}

// unverifiedIssuer reads a JWT's "iss" without verifying anything: only to
// route the token to the authenticator that can verify it.
func unverifiedIssuer(token string) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Iss
}
