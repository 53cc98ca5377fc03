package auth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/auth/authtest"
)

// The client certificate authenticator, behind a real TLS handshake: names
// and groups carry its prefixes.
func TestClientCertificates(t *testing.T) {
	ca, other := authtest.NewCA(t), authtest.NewCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if len(r.TLS.VerifiedChains) > 0 {
			req.PeerCertificates = r.TLS.VerifiedChains[0]
		}
		id, ok, err := ClientCertificates{UsernamePrefix: "cert:", GroupsPrefix: "cert:"}.Authenticate(r.Context(), req)
		_ = json.NewEncoder(w).Encode(map[string]any{"name": id.Name, "groups": id.Groups, "ok": ok, "err": fmt.Sprint(err)})
	}))
	srv.TLS = ca.ServerTLS(t)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()

	call := func(cert *tls.Certificate) (map[string]any, error) {
		cfg := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get(srv.URL)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		return out, json.NewDecoder(resp.Body).Decode(&out)
	}
	withURI := ca.Client(t, "backend", "spiffe://platform/backend", "platform", "ops")
	cnOnly := ca.Client(t, "team-web", "")
	forged := other.Client(t, "admin", "")
	lookalike := ca.Client(t, "system:serviceaccount:platform:backend", "", "system:serviceaccounts")
	tests := []struct {
		name       string
		cert       *tls.Certificate
		wantName   string
		wantGroups string
		wantOK     bool
		wantTLSErr bool
	}{
		{"URI SAN names the caller, organizations are groups", &withURI, "cert:spiffe://platform/backend", "[cert:ops cert:platform]", true, false},
		{"common name without a URI SAN", &cnOnly, "cert:team-web", "<nil>", true, false},
		{"a common name like a ServiceAccount's is not that account", &lookalike, "cert:system:serviceaccount:platform:backend", "[cert:system:serviceaccounts]", true, false},
		{"no certificate: not recognised", nil, "", "<nil>", false, false},
		{"another CA's certificate: the handshake fails", &forged, "", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := call(tc.cert)
			if tc.wantTLSErr {
				if err == nil {
					t.Fatalf("handshake with a foreign certificate succeeded: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got["name"] != tc.wantName || fmt.Sprint(got["groups"]) != tc.wantGroups || got["ok"] != tc.wantOK {
				t.Errorf("got %v", got)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeFile(t, path, fmt.Sprintf(`tokens:
  - name: backend
    sha256: %s
    roles: [admin]
  - name: web-ci
    sha256: %s
    groups: [team-web]
`, TokenHash("s3cret-backend"), TokenHash("s3cret-web")))
	f, err := NewTokenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakePassiveClock(time.Now())
	f.clock = clk

	id, ok, err := f.Authenticate(ctx, Request{BearerToken: "s3cret-backend"})
	if !ok || err != nil || id.Name != "backend" || !slices.Equal(id.Roles, []string{"admin"}) || id.TokenHash != TokenHash("s3cret-backend")[:12] {
		t.Errorf("backend token: %+v %v %v", id, ok, err)
	}
	if _, ok, _ := f.Authenticate(ctx, Request{BearerToken: "s3cret-nobody"}); ok {
		t.Error("an unknown token was recognised")
	}
	if _, ok, _ := f.Authenticate(ctx, Request{}); ok {
		t.Error("no token was recognised")
	}

	// A changed file is read again (at most once a second)...
	writeFile(t, path, fmt.Sprintf("tokens:\n  - name: rotated\n    sha256: %s\n    roles: [admin]\n", TokenHash("s3cret-rotated")))
	if _, ok, _ := f.Authenticate(ctx, Request{BearerToken: "s3cret-rotated"}); ok {
		t.Error("the file was read again within the second")
	}
	clk.SetTime(clk.Now().Add(2 * time.Second))
	if id, ok, _ := f.Authenticate(ctx, Request{BearerToken: "s3cret-rotated"}); !ok || id.Name != "rotated" {
		t.Errorf("after the change: %+v %v", id, ok)
	}
	if _, ok, _ := f.Authenticate(ctx, Request{BearerToken: "s3cret-backend"}); ok {
		t.Error("a removed token still works")
	}
	// ...and a broken one leaves the last good one in force.
	writeFile(t, path, "tokens: [ {name: x, sha256: not-hex} ]\n")
	clk.SetTime(clk.Now().Add(2 * time.Second))
	if _, ok, _ := f.Authenticate(ctx, Request{BearerToken: "s3cret-rotated"}); !ok {
		t.Error("a broken file replaced the last good one")
	}

	for name, content := range map[string]string{
		"short hash":    "tokens:\n  - name: a\n    sha256: abcd\n",
		"no name":       fmt.Sprintf("tokens:\n  - sha256: %s\n", TokenHash("x")),
		"unknown field": fmt.Sprintf("tokens:\n  - name: a\n    token: plain\n    sha256: %s\n", TokenHash("x")),
	} {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		writeFile(t, bad, content)
		if _, err := NewTokenFile(bad, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOIDC(t *testing.T) {
	ctx := context.Background()
	is := authtest.NewIssuer(t)
	o, err := NewOIDC(OIDCConfig{IssuerURL: is.URL, ClientID: "credbroker", UsernameClaim: "email", GroupsClaim: "groups",
		UsernamePrefix: "oidc:", GroupsPrefix: "oidc:"})
	if err != nil {
		t.Fatal(err)
	}
	otherKey := authtest.NewKey(t)
	now := time.Now()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"iss": is.URL, "aud": "credbroker", "sub": "u-1", "email": "dev@example.com",
			"groups": []string{"team-web"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if change != nil {
			change(c)
		}
		return c
	}
	tests := []struct {
		name       string
		token      string
		wantOK     bool
		wantErr    bool
		wantName   string
		wantGroups []string
	}{
		{"valid", is.Token(t, claims(nil)), true, false, "oidc:dev@example.com", []string{"oidc:team-web"}},
		{"a user named like a ServiceAccount stays the issuer's", is.Token(t, claims(func(c map[string]any) {
			c["email"], c["groups"] = "system:serviceaccount:web:ci", []string{"system:masters"}
		})), true, false, "oidc:system:serviceaccount:web:ci", []string{"oidc:system:masters"}},
		{"expired", is.Token(t, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), true, true, "", nil},
		{"wrong audience", is.Token(t, claims(func(c map[string]any) { c["aud"] = "someone-else" })), true, true, "", nil},
		{"wrong signature", authtest.SignedToken(t, otherKey, claims(nil)), true, true, "", nil},
		{"no username claim", is.Token(t, claims(func(c map[string]any) { delete(c, "email") })), true, true, "", nil},
		{"another issuer: left to the next authenticator", is.Token(t, claims(func(c map[string]any) { c["iss"] = "https://elsewhere" })), false, false, "", nil},
		{"not a JWT", "opaque-token", false, false, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, ok, err := o.Authenticate(ctx, Request{BearerToken: tc.token})
			if ok != tc.wantOK || (err != nil) != tc.wantErr || id.Name != tc.wantName || !slices.Equal(id.Groups, tc.wantGroups) {
				t.Errorf("got %+v ok=%v err=%v", id, ok, err)
			}
			if err != nil && strings.Contains(err.Error(), tc.token) {
				t.Error("the error carries the token")
			}
		})
	}
}

func TestTokenReviewCachesAnswers(t *testing.T) {
	ctx := context.Background()
	reviews := 0
	r := NewTokenReview(func(_ context.Context, token string) (Review, error) {
		reviews++
		switch token {
		case "good":
			return Review{Authenticated: true, User: "system:serviceaccount:platform:backend", Groups: []string{"system:serviceaccounts"}}, nil
		case "outage":
			return Review{}, errors.New("connection refused")
		}
		return Review{}, nil
	}, 10*time.Second)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	r.clock = clk
	for range 3 {
		if id, ok, err := r.Authenticate(ctx, Request{BearerToken: "good"}); !ok || err != nil || id.Name != "system:serviceaccount:platform:backend" {
			t.Fatalf("good token: %+v %v %v", id, ok, err)
		}
	}
	if reviews != 1 {
		t.Errorf("%d reviews for three calls within the TTL, want 1", reviews)
	}
	clk.SetTime(clk.Now().Add(11 * time.Second))
	_, _, _ = r.Authenticate(ctx, Request{BearerToken: "good"})
	if reviews != 2 {
		t.Errorf("%d reviews after the TTL, want 2", reviews)
	}
	if _, ok, err := r.Authenticate(ctx, Request{BearerToken: "bad"}); !ok || err == nil {
		t.Errorf("a refused token: ok=%v err=%v, want recognised and refused", ok, err)
	}
	if _, _, err := r.Authenticate(ctx, Request{BearerToken: "outage"}); err == nil {
		t.Error("an API server outage authenticated")
	}
	if _, ok, _ := r.Authenticate(ctx, Request{}); ok {
		t.Error("no token was recognised")
	}
}

func TestChainOrderAndPolicy(t *testing.T) {
	ctx := context.Background()
	chain := Chain{ClientCertificates{}, NewTokens(StaticToken{Name: "dev-admin", Token: "dev", Roles: []string{RoleAdmin}})}
	if _, err := chain.Authenticate(ctx, Request{}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("nothing presented: %v", err)
	}
	if _, err := chain.Authenticate(ctx, Request{BearerToken: "guess"}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("an unknown token: %v", err)
	}
	id, err := chain.Authenticate(ctx, Request{BearerToken: "dev"})
	if err != nil || id.Name != "dev-admin" {
		t.Fatalf("dev token: %+v %v", id, err)
	}

	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, `bindings:
  - subject: ci-web
    roles: ["tenant-admin:web"]
  - subject: group:auditors
    roles: ["tenant-reader:web", "tenant-reader:shop"]
`)
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		id     Identity
		access Access
		tenant string
		want   bool
	}{
		{"admin from the token file, any tenant", id, TenantWrite, "shop", true},
		{"admin, a method without a tenant", id, Admin, "", true},
		{"tenant admin writes its tenant", Identity{Name: "ci-web"}, TenantWrite, "web", true},
		{"tenant admin reads its tenant", Identity{Name: "ci-web"}, TenantRead, "web", true},
		{"tenant admin, another tenant", Identity{Name: "ci-web"}, TenantRead, "shop", false},
		{"tenant admin, an admin method", Identity{Name: "ci-web"}, Admin, "web", false},
		{"reader by group reads", Identity{Name: "ann", Groups: []string{"auditors"}}, TenantRead, "shop", true},
		{"reader by group does not write", Identity{Name: "ann", Groups: []string{"auditors"}}, TenantWrite, "shop", false},
		{"a reader's read without a tenant is an admin's", Identity{Name: "ann", Groups: []string{"auditors"}}, TenantRead, "", false},
		{"nobody", Identity{Name: "eve"}, TenantRead, "web", false},
		{"public", Identity{}, Public, "", true},
	}
	for _, tc := range tests {
		if got := Allowed(p.Roles(tc.id), tc.access, tc.tenant); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	writeFile(t, path, "bindings:\n  - subject: x\n    roles: [tenant-reader]\n")
	if _, err := LoadPolicy(path); err == nil {
		t.Error("a tenant role without a tenant was accepted")
	}
}

// No authenticator's caller may be named like a group of the policy: such a
// name is refused, whoever vouched for it.
func TestANameThatReadsAsAGroupIsRefused(t *testing.T) {
	chain := Chain{NewTokens(StaticToken{Name: "group:platform", Token: "t1"}, StaticToken{Name: "platform", Token: "t2"})}
	if _, err := chain.Authenticate(context.Background(), Request{BearerToken: "t1"}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a caller named group:platform: %v, want unauthenticated", err)
	}
	if id, err := chain.Authenticate(context.Background(), Request{BearerToken: "t2"}); err != nil || id.Name != "platform" {
		t.Errorf("a caller named platform: %+v, %v", id, err)
	}
}

// An issuer that accepts connections and never answers holds no caller past
// its own deadline, is asked once for all callers at a time, and not again
// until the backoff has passed; when it answers, OIDC works.
func TestAHungOIDCIssuer(t *testing.T) {
	is := authtest.NewIssuer(t)
	var requests atomic.Int32
	hung := true
	var mu sync.Mutex
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mu.Lock()
		h := hung
		mu.Unlock()
		if h {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		// Serve the real issuer's documents under this server's URL.
		resp, err := http.Get(is.URL + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		if _, ok := doc["issuer"]; ok {
			doc["issuer"], doc["jwks_uri"] = "http://"+r.Host, "http://"+r.Host+"/keys"
		}
		_ = json.NewEncoder(w).Encode(doc)
	}))
	defer srv.Close()
	defer close(release)

	o, err := NewOIDC(OIDCConfig{IssuerURL: srv.URL, ClientID: "credbroker", UsernamePrefix: "oidc:"})
	if err != nil {
		t.Fatal(err)
	}
	o.client.Timeout = 500 * time.Millisecond
	clk := clocktesting.NewFakePassiveClock(time.Now())
	o.clock = clk
	now := time.Now()
	token := is.Token(t, map[string]any{"iss": srv.URL, "aud": "credbroker", "sub": "dev", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})

	// Three callers at once, each with a deadline shorter than discovery's.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, _, err := o.Authenticate(ctx, Request{BearerToken: token})
			if took := time.Since(start); err == nil || took > 400*time.Millisecond {
				t.Errorf("a caller with a 100 ms deadline: %v after %v", err, took)
			}
		})
	}
	wg.Wait()
	// Discovery itself gives up at the client timeout.
	deadline := time.Now().Add(5 * time.Second)
	for o.retryAtIsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("%d requests to the issuer for three callers, want 1", got)
	}
	// Within the backoff nobody asks the issuer.
	if _, _, err := o.Authenticate(context.Background(), Request{BearerToken: token}); err == nil || !strings.Contains(err.Error(), "not tried again") {
		t.Errorf("within the backoff: %v", err)
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("%d requests within the backoff, want 1", got)
	}
	// The issuer recovers; after the backoff the token is accepted.
	mu.Lock()
	hung = false
	mu.Unlock()
	clk.SetTime(clk.Now().Add(oidcMaxBackoff))
	if id, ok, err := o.Authenticate(context.Background(), Request{BearerToken: token}); err != nil || !ok || id.Name != "oidc:dev" {
		t.Errorf("after the issuer recovered: %+v %v %v", id, ok, err)
	}
}

func (o *OIDC) retryAtIsZero() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.retryAt.IsZero()
}

// A flood of made-up bearer tokens costs the API server at most the
// review budget: the rest are refused with ErrBusy at once, and a caller
// whose token was reviewed before is still served from the cache.
func TestAFloodOfTokensIsRefusedBeforeTheAPIServer(t *testing.T) {
	ctx := context.Background()
	var reviews atomic.Int32
	r := NewTokenReview(func(_ context.Context, token string) (Review, error) {
		reviews.Add(1)
		return Review{Authenticated: token == "good", User: "system:serviceaccount:platform:backend"}, nil
	}, 10*time.Second)
	if _, _, err := r.Authenticate(ctx, Request{BearerToken: "good"}); err != nil {
		t.Fatal(err)
	}
	busy := 0
	for i := range 1000 {
		_, _, err := r.Authenticate(ctx, Request{BearerToken: fmt.Sprintf("made-up-%d", i)})
		if errors.Is(err, ErrBusy) {
			busy++
		}
	}
	if got := reviews.Load(); got > ReviewBurst+5 || busy < 1000-ReviewBurst-5 {
		t.Errorf("%d reviews and %d refused as busy for 1,000 made-up tokens; want at most ~%d reviews", got, busy, ReviewBurst)
	}
	if id, _, err := r.Authenticate(ctx, Request{BearerToken: "good"}); err != nil || id.Name == "" {
		t.Errorf("a reviewed caller during the flood: %v", err)
	}
	if _, err := (Chain{r}).Authenticate(ctx, Request{BearerToken: "made-up-again"}); !errors.Is(err, ErrBusy) || errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the chain: %v, want ErrBusy (retry), not unauthenticated", err)
	}
}
