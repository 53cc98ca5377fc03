package registrytoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/broker"
)

type pods map[string]broker.PodIdentity

// PodOf knows the fixture's tokens by name, bare or as the subject of a
// JWT that says when it expires (podToken), as the API server's do.
func (p pods) PodOf(_ context.Context, token string) (broker.PodIdentity, error) {
	if token == "review-fails" {
		return broker.PodIdentity{}, fmt.Errorf("%w: the API server is down", broker.ErrUnavailable)
	}
	if tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256}); err == nil {
		var c jwt.Claims
		if tok.UnsafeClaimsWithoutVerification(&c) == nil {
			token = c.Subject
		}
	}
	if pod, ok := p[token]; ok {
		return pod, nil
	}
	return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenRejected, Msg: "the API server does not accept the token"}
}

// podToken is the fixture's token name as a JWT that expires at exp, as
// the API server issues a Pod-bound one.
func podToken(t testing.TB, name string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: newKey(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: name, Expiry: jwt.NewNumericDate(exp)}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// boundPods are the Pods still there: every fixture Pod but the gone ones.
type boundPods struct {
	mu    sync.Mutex
	gone  map[string]bool // namespace/pod
	asked int
}

func (b *boundPods) StillBound(_ context.Context, pod broker.PodIdentity) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked++
	if b.gone[pod.Namespace+"/"+pod.Pod] {
		return &broker.DeniedError{Denial: broker.DenyTokenRejected, Msg: "Pod " + pod.Namespace + "/" + pod.Pod + " was deleted"}
	}
	return nil
}

// checks is how many times the service asked.
func (b *boundPods) checks() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked
}

func (b *boundPods) delete(namespace, pod string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gone[namespace+"/"+pod] = true
}

type owners struct{ err error }

// NamespaceOwner binds web to a tenant of Acme that may push, and shop-org
// (a namespace named after another tenant's owner) to one that may not.
func (o owners) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	if o.err != nil {
		return broker.Tenant{}, false, o.err
	}
	switch ns {
	case "web":
		return broker.Tenant{ID: "web", Owner: broker.Owner{Login: "Acme"}, AllowedOwners: []string{"acme-shared"}, RegistryPush: true}, true, nil
	case "shop-org":
		return broker.Tenant{ID: "lookalike", Owner: broker.Owner{Login: "lookalike"}}, true, nil
	case "platform-team":
		return broker.Tenant{ID: "platform", Owner: broker.Owner{Login: "platform"}, RegistryPush: true}, true, nil
	}
	return broker.Tenant{}, false, nil
}

type fixture struct {
	svc   *Service
	pods  *boundPods
	key   *ecdsa.PrivateKey // keys' signing key
	keys  *Keys
	clock *clocktesting.FakePassiveClock
	h     http.Handler
}

func newFixture(t testing.TB, o owners) *fixture {
	t.Helper()
	key := newKey(t)
	keys, err := NewKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, keys: keys, clock: clocktesting.NewFakePassiveClock(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)),
		pods: &boundPods{gone: map[string]bool{}}}
	f.svc, err = New(Config{Service: "reg", Issuer: "credbroker", PublicPrefixes: []string{"platform/"}, Clock: f.clock, BoundPods: f.pods}, keys,
		pods{"web-token": {Namespace: "web", ServiceAccount: "default", Pod: "app"}, "other-token": {Namespace: "other", ServiceAccount: "ci", Pod: "job"},
			"shop-org-token":      {Namespace: "shop-org", ServiceAccount: "default", Pod: "app"},
			"platform-team-token": {Namespace: "platform-team", ServiceAccount: "ci", Pod: "build"}},
		o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.h = f.svc.Handler()
	return f
}

// get asks for scopes with the token as Basic password ("" for none).
func (f *fixture) get(service, token string, scopes ...string) *httptest.ResponseRecorder {
	user := "serviceaccount"
	if token == "" {
		user = ""
	}
	return f.getAs(service, user, token, scopes...)
}

// getAs asks for scopes as user with password (none when user is "").
func (f *fixture) getAs(service, user, password string, scopes ...string) *httptest.ResponseRecorder {
	q := url.Values{"service": {service}, "scope": scopes}
	req := httptest.NewRequest(http.MethodGet, TokenPath+"?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) post(form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

type tokenClaims struct {
	jwt.Claims
	Access []ResourceAccess `json:"access"`
}

// verify checks a token as a registry does, with the published key set,
// and returns its claims.
func (f *fixture) verify(t *testing.T, raw string) tokenClaims {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	set := f.keys.JWKS()
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("the token's kid %q is not in the JWKS", tok.Headers[0].KeyID)
	}
	var c tokenClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: "credbroker", AnyAudience: jwt.Audience{"reg"}, Time: f.clock.Now()}, 0); err != nil {
		t.Fatalf("claims %+v: %v", c.Claims, err)
	}
	return c
}

func body(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	return m
}

func granted(c tokenClaims) []string {
	out := []string{}
	for _, a := range c.Access {
		out = append(out, a.String())
	}
	return out
}

func TestTokensGrantNoMoreThanTheCallerMay(t *testing.T) {
	tests := []struct {
		name, token string
		scopes      []string
		want        []string
	}{
		{"anonymous: public prefixes only", "", []string{"repository:platform/base:pull", "repository:acme/app:pull"}, []string{"repository:platform/base:pull"}},
		{"a Pod of the tenant: its owner, a granted owner, its namespace", "web-token",
			[]string{"repository:acme/app:pull", "repository:acme-shared/base:pull", "repository:cluster.local/web/tool:pull"},
			[]string{"repository:acme/app:pull", "repository:acme-shared/base:pull", "repository:cluster.local/web/tool:pull"}},
		{"look-alike owners and another tenant's", "web-token",
			[]string{"repository:acme-evil/app:pull", "repository:acmee/app:pull", "repository:shop/app:pull", "repository:other/app:pull",
				"repository:web/tool:pull", "repository:cluster.local/web-evil/tool:pull", "repository:cluster.local/shop-org/app:pull"}, []string{}},
		{"push where the tenant allows it: its owner and its namespace", "web-token",
			[]string{"repository:acme/app:pull,push", "repository:cluster.local/web/tool:push"},
			[]string{"repository:acme/app:pull,push", "repository:cluster.local/web/tool:push"}},
		{"no push to granted owners or public prefixes, no delete", "web-token",
			[]string{"repository:acme-shared/base:pull,push", "repository:platform/base:pull,push", "repository:acme/app:delete,*"},
			[]string{"repository:acme-shared/base:pull", "repository:platform/base:pull"}},
		{"a namespace named after another tenant's owner gets nothing of it", "shop-org-token",
			[]string{"repository:shop-org/app:pull", "repository:cluster.local/shop-org/app:pull,push", "repository:lookalike/app:push"},
			[]string{"repository:cluster.local/shop-org/app:pull"}},
		{"a tenant whose owner is named like a public prefix pulls it but never pushes there", "platform-team-token",
			[]string{"repository:platform/base:pull,push", "repository:cluster.local/platform-team/x:push"},
			[]string{"repository:platform/base:pull", "repository:cluster.local/platform-team/x:push"}},
		{"the catalog is refused", "web-token", []string{"registry:catalog:*"}, []string{}},
		{"a Pod of an unbound namespace: public only", "other-token", []string{"repository:other/app:pull", "repository:platform/x:pull"}, []string{"repository:platform/x:pull"}},
		{"several scopes in one value (OAuth2's form)", "web-token", []string{"repository:acme/a:pull repository:acme/b:pull"}, []string{"repository:acme/a:pull", "repository:acme/b:pull"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, owners{})
			rec := f.get("reg", tc.token, tc.scopes...)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			m := body(t, rec)
			if m["token"] != m["access_token"] || m["expires_in"] != float64(300) || m["issued_at"] != "2026-12-03T12:00:00Z" {
				t.Errorf("answer %v", m)
			}
			c := f.verify(t, m["token"].(string))
			if got := granted(c); !slices.Equal(got, tc.want) {
				t.Errorf("granted %v, want %v", got, tc.want)
			}
			if wantSub := map[string]string{"": "", "web-token": "system:serviceaccount:web:default", "other-token": "system:serviceaccount:other:ci",
				"shop-org-token": "system:serviceaccount:shop-org:default", "platform-team-token": "system:serviceaccount:platform-team:ci"}[tc.token]; c.Subject != wantSub {
				t.Errorf("subject %q, want %q", c.Subject, wantSub)
			}
		})
	}
}

func TestBadRequestsGetTheErrorTheSpecificationsName(t *testing.T) {
	form := func(kv ...string) url.Values {
		v := url.Values{"service": {"reg"}, "client_id": {"containerd"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name   string
		do     func(f *fixture) *httptest.ResponseRecorder
		status int
		code   string
	}{
		{"GET for another service", func(f *fixture) *httptest.ResponseRecorder { return f.get("other", "web-token") }, 400, "invalid_request"},
		{"GET with a malformed scope", func(f *fixture) *httptest.ResponseRecorder { return f.get("reg", "web-token", "repository:acme") }, 400, "invalid_scope"},
		{"GET with an uppercase repository", func(f *fixture) *httptest.ResponseRecorder {
			return f.get("reg", "web-token", "repository:Acme/App:pull")
		}, 400, "invalid_scope"},
		{"GET with a token the API server refuses", func(f *fixture) *httptest.ResponseRecorder { return f.get("reg", "forged") }, 401, "invalid_grant"},
		{"GET when the API server cannot review", func(f *fixture) *httptest.ResponseRecorder { return f.get("reg", "review-fails") }, 503, "server_error"},
		{"POST without grant_type", func(f *fixture) *httptest.ResponseRecorder { return f.post(form()) }, 400, "invalid_request"},
		{"POST with another grant", func(f *fixture) *httptest.ResponseRecorder {
			return f.post(form("grant_type", "client_credentials"))
		}, 400, "unsupported_grant_type"},
		{"POST password without client_id", func(f *fixture) *httptest.ResponseRecorder {
			v := form("grant_type", "password", "username", "sa", "password", "web-token")
			v.Del("client_id")
			return f.post(v)
		}, 400, "invalid_request"},
		{"POST password without a password", func(f *fixture) *httptest.ResponseRecorder {
			return f.post(form("grant_type", "password", "username", "sa"))
		}, 400, "invalid_request"},
		{"POST a refresh token that is not one", func(f *fixture) *httptest.ResponseRecorder {
			return f.post(form("grant_type", "refresh_token", "refresh_token", "abc"))
		}, 400, "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.do(newFixture(t, owners{}))
			m := body(t, rec)
			if rec.Code != tc.status || m["error"] != tc.code || m["error_description"] == "" {
				t.Errorf("%d %v, want %d %s", rec.Code, m, tc.status, tc.code)
			}
			if strings.Contains(rec.Body.String(), "web-token") {
				t.Error("the answer repeats the token")
			}
			if tc.status == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %v", rec.Header())
			}
		})
	}
	t.Run("tenants not loaded yet", func(t *testing.T) {
		f := newFixture(t, owners{err: fmt.Errorf("%w: not synced", broker.ErrUnavailable)})
		if rec := f.get("reg", "web-token", "repository:acme/app:pull"); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%d %s, want 503", rec.Code, rec.Body)
		}
	})
}

func TestTheOAuth2FlowWithRefreshTokens(t *testing.T) {
	f := newFixture(t, owners{})
	rec := f.post(url.Values{"grant_type": {"password"}, "username": {"sa"}, "password": {podToken(t, "web-token", f.clock.Now().Add(2*time.Hour))}, "service": {"reg"},
		"client_id": {"containerd"}, "access_type": {"offline"}, "scope": {"repository:acme/app:pull repository:shop/app:pull"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	m := body(t, rec)
	if got := granted(f.verify(t, m["access_token"].(string))); !slices.Equal(got, []string{"repository:acme/app:pull"}) {
		t.Errorf("granted %v", got)
	}
	if m["scope"] != "repository:acme/app:pull" || m["token"] != nil {
		t.Errorf("answer %v: the granted scope, and no GET-style token field", m)
	}
	refresh, _ := m["refresh_token"].(string)
	if refresh == "" {
		t.Fatalf("no refresh token for access_type=offline: %v", m)
	}
	// A registry takes no refresh token as an access token: its audience
	// is not the service.
	tok, _ := jwt.ParseSigned(refresh, []jose.SignatureAlgorithm{jose.ES256})
	var rc jwt.Claims
	if err := tok.Claims(f.keys.JWKS().Keys[0].Key, &rc); err != nil || rc.Audience.Contains("reg") {
		t.Errorf("refresh token audience %v (%v)", rc.Audience, err)
	}
	refreshed := func() *httptest.ResponseRecorder {
		return f.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"reg"}, "client_id": {"containerd"},
			"scope": {"repository:cluster.local/web/tool:pull"}})
	}
	rec = refreshed()
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	if got := granted(f.verify(t, body(t, rec)["access_token"].(string))); !slices.Equal(got, []string{"repository:cluster.local/web/tool:pull"}) {
		t.Errorf("refreshed grant %v", got)
	}
	f.clock.SetTime(f.clock.Now().Add(DefaultRefreshTTL + time.Second))
	if rec := refreshed(); rec.Code != http.StatusBadRequest || body(t, rec)["error"] != "invalid_grant" {
		t.Errorf("an expired refresh token: %d %s", rec.Code, rec.Body)
	}
	// A refresh token of another service's keys is refused.
	other := newFixture(t, owners{})
	rec = other.post(url.Values{"grant_type": {"password"}, "username": {"sa"}, "password": {podToken(t, "web-token", f.clock.Now().Add(2*time.Hour))}, "service": {"reg"},
		"client_id": {"containerd"}, "access_type": {"offline"}})
	foreign := body(t, rec)["refresh_token"].(string)
	rec = f.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {foreign}, "service": {"reg"}, "client_id": {"containerd"}})
	if rec.Code != http.StatusBadRequest || body(t, rec)["error"] != "invalid_grant" {
		t.Errorf("another service's refresh token: %d %s", rec.Code, rec.Body)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestKeysRotate: the next key is published beside the current one before
// it signs, so a registry that reloaded the key set takes tokens of both.
func TestKeysRotate(t *testing.T) {
	f := newFixture(t, owners{})
	old := f.get("reg", "web-token", "repository:acme/app:pull")
	rotated, err := NewKeys(newKey(t), f.key)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.kid == f.keys.kid || len(rotated.JWKS().Keys) != 2 {
		t.Fatalf("rotated set %v signs with %s", rotated.JWKS().Keys, rotated.kid)
	}
	f.keys = rotated
	f.svc.keys = rotated
	f.verify(t, body(t, old)["token"].(string)) // still good
	f.verify(t, body(t, f.get("reg", "web-token", "repository:acme/app:pull"))["token"].(string))
	for _, bad := range [][]byte{[]byte("not pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")} {
		if _, err := ParseKeys(bad); err == nil {
			t.Errorf("%q parsed as a key", bad)
		}
	}
	if _, err := NewKeys(); err == nil {
		t.Error("no keys made a key set")
	}
}

func TestNamespacePrefixesThatAnOwnerCouldTakeAreRefused(t *testing.T) {
	keys, err := NewKeys(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for prefix, ok := range map[string]bool{
		"":                           true, // the default
		"cluster.local/{namespace}/": true,
		"ns_{namespace}/":            true,
		"teams.example/{namespace}/": true,
		"{namespace}/":               false, // a namespace named shop-org would reach shop-org's images
		"namespaces/{namespace}/":    false,
		"cluster.local/":             false,
		"cluster.local/{namespace}":  false,
		"Cluster.Local/{namespace}/": false,
	} {
		_, err := New(Config{Service: "reg", NamespacePrefix: prefix}, keys, pods{}, owners{}, slog.New(slog.DiscardHandler))
		if (err == nil) != ok {
			t.Errorf("namespace prefix %q: %v, want accepted %v", prefix, err, ok)
		}
	}
}
