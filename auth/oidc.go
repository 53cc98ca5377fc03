package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
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

// OIDC authenticates ID tokens of one issuer, verified against its JWKS
// (discovered from the issuer at the first use, so that a briefly
// unreachable issuer does not stop credbroker from starting).
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

// NewOIDC returns an OIDC authenticator.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.IssuerURL == "" || cfg.ClientID == "" {
		return nil, errors.New("OIDC needs an issuer URL and a client id")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "sub"
	}
	return &OIDC{cfg: cfg}, nil
}

func (o *OIDC) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	// The provider keeps ctx for fetching keys later: it must outlive this call.
	provider, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), nil), o.cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %s: %w", o.cfg.IssuerURL, err)
	}
	o.verifier = provider.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	return o.verifier, nil
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
