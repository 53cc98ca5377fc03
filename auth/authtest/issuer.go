package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Provider is a local OpenID provider: discovery and JWKS over HTTP, and ID
// tokens signed with its key, for go-oidc to verify as it would a real one.
type Provider struct {
	URL string
	Key *rsa.PrivateKey
}

// NewIssuer starts an Issuer that serves until the test ends.
func NewIssuer(t testing.TB) *Provider {
	t.Helper()
	is := &Provider{Key: NewKey(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/keys",
			"authorization_endpoint": is.URL + "/auth", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.Key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	is.URL = srv.URL
	return is
}

// NewKey returns a fresh RSA key, for an Issuer or for a token no issuer
// signed.
func NewKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Token is an ID token with claims, signed by the Issuer.
func (is *Provider) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	return SignedToken(t, is.Key, claims)
}

// SignedToken is a JWT with claims signed by key (kid k1).
func SignedToken(t testing.TB, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	return SignedTokenWithKeyID(t, key, "k1", claims)
}

// SignedTokenWithKeyID is a JWT with claims signed by key, naming it kid.
func SignedTokenWithKeyID(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
