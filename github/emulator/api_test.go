package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/golang-jwt/jwt/v4"
)

// The App JWT rules, checked with hand-made JWTs because ghinstallation only
// ever signs good ones.
func TestAppJWTRules(t *testing.T) {
	key, _, err := NewAppKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewAppKey()
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer()
	defer s.Close()
	now := time.Now().Truncate(time.Second)
	s.SetClock(clocktesting.NewFakePassiveClock(now))
	s.AddApp(7, &key.PublicKey)
	s.SetAppClientID(7, "Iv23liAcmeApp0000007")
	s.AddApp(9, &other.PublicKey)
	s.SetAppClientID(9, "Iv23liOtherApp000009")
	s.AddInstallation(AppInstallation{ID: 1, AppID: 7, Account: Account{Login: "acme", ID: 2, Type: "Organization"}})

	sign := func(method jwt.SigningMethod, signer any, iss string, iat, exp time.Time) string {
		tok, err := jwt.NewWithClaims(method, jwt.RegisteredClaims{
			Issuer: iss, IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp),
		}).SignedString(signer)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name, jwt string
		status    int
		message   string
	}{
		{"valid", sign(jwt.SigningMethodRS256, key, "7", now.Add(-30*time.Second), now.Add(2*time.Minute)), http.StatusOK, ""},
		{"GitHub's own example: iat 60 s back, exp 10 minutes ahead", sign(jwt.SigningMethodRS256, key, "7", now.Add(-time.Minute), now.Add(10*time.Minute)), http.StatusOK, ""},
		{"exp more than 10 minutes ahead", sign(jwt.SigningMethodRS256, key, "7", now.Add(-time.Minute), now.Add(10*time.Minute+time.Second)), http.StatusUnauthorized, "too far in the future"},
		{"iat a second in GitHub's future", sign(jwt.SigningMethodRS256, key, "7", now.Add(time.Second), now.Add(5*time.Minute)), http.StatusUnauthorized, "'Issued at'"},
		{"expired", sign(jwt.SigningMethodRS256, key, "7", now.Add(-5*time.Minute), now.Add(-time.Second)), http.StatusUnauthorized, "'Expiration time'"},
		{"issued in the future", sign(jwt.SigningMethodRS256, key, "7", now.Add(2*time.Minute), now.Add(5*time.Minute)), http.StatusUnauthorized, "'Issued at'"},
		{"signed by another key", sign(jwt.SigningMethodRS256, other, "7", now, now.Add(time.Minute)), http.StatusUnauthorized, "could not be decoded"},
		{"HMAC instead of RS256", sign(jwt.SigningMethodHS256, []byte("k"), "7", now, now.Add(time.Minute)), http.StatusUnauthorized, "could not be decoded"},
		{"unknown App", sign(jwt.SigningMethodRS256, key, "8", now, now.Add(time.Minute)), http.StatusNotFound, "Integration not found"},
		// GitHub takes the App's client ID as iss in place of its id.
		{"the client ID as iss", sign(jwt.SigningMethodRS256, key, "Iv23liAcmeApp0000007", now, now.Add(time.Minute)), http.StatusOK, ""},
		{"another App's client ID, signed with this App's key", sign(jwt.SigningMethodRS256, key, "Iv23liOtherApp000009", now, now.Add(time.Minute)), http.StatusUnauthorized, "could not be decoded"},
		{"another App's client ID for this App's installation", sign(jwt.SigningMethodRS256, other, "Iv23liOtherApp000009", now, now.Add(time.Minute)), http.StatusNotFound, "Not Found"},
		{"an unknown client ID", sign(jwt.SigningMethodRS256, key, "Iv23liNobody00000000", now, now.Add(time.Minute)), http.StatusUnauthorized, "'Issuer' claim ('iss') must be an Integer"},
		{"a client ID with a stray character", sign(jwt.SigningMethodRS256, key, "Iv23liAcmeApp0000007 ", now, now.Add(time.Minute)), http.StatusUnauthorized, "'Issuer' claim ('iss') must be an Integer"},
		{"no iss", sign(jwt.SigningMethodRS256, key, "", now, now.Add(time.Minute)), http.StatusUnauthorized, "Missing 'issuer' claim ('iss')"},
		{"not a JWT", "hello", http.StatusUnauthorized, "could not be decoded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.URL()+"app/installations/1", nil)
			req.Header.Set("Authorization", "Bearer "+tc.jwt)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.message) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.message)
			}
		})
	}
	if n := s.Calls(RouteGetInstallation); n != len(tests) {
		t.Errorf("counted %d calls, want %d", n, len(tests))
	}
}

// Like ghcr.io, the registry answers 404 for a multi-arch image to a client
// whose Accept names no index type.
func TestAnIndexNeedsAnAcceptThatNamesIt(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddMultiArchImage("octo/multi", "v1")
	// A token the realm issues for a PAT that may pull.
	s.AddPAT("ghp_reader", IssuedPAT{Owner: Account{Login: "octo", ID: 1, Type: "User"}, Scopes: []string{"read:packages"}})
	token := registryToken(t, s, "repository:octo/multi:pull", "octo", "ghp_reader")
	for _, tc := range []struct {
		accept string
		want   int
	}{
		{"application/vnd.oci.image.manifest.v1+json", http.StatusNotFound},
		{"application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json", http.StatusOK},
		{"application/vnd.docker.distribution.manifest.list.v2+json", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodHead, s.Registry.URL+"/v2/octo/multi/manifests/v1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", tc.accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Accept %q: %d, want %d", tc.accept, resp.StatusCode, tc.want)
		}
	}
}

// Like ghcr.io, the registry answers a logged-in pull whose token grants
// nothing on the repository 403 DENIED, and an anonymous pull 401 with the
// challenge.
func TestAPullWithoutAccessIsDenied(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddImage("acme/app", "v1")
	s.AddPAT("ghp_octo", IssuedPAT{Owner: Account{Login: "octo", ID: 1, Type: "User"}, Scopes: []string{"read:packages"}})
	octo := registryToken(t, s, "repository:acme/app:pull", "octo", "ghp_octo")
	anonymousToken := registryToken(t, s, "repository:acme/app:pull", "", "")
	for _, tc := range []struct {
		name, authorization string
		status              int
		body, challenge     string
	}{
		{"a token without access", "Bearer " + octo, http.StatusForbidden, `"code":"DENIED","message":"denied"`, ""},
		{"no token", "", http.StatusUnauthorized, `"code":"UNAUTHORIZED"`, `Bearer realm="` + s.RegistryRealm()},
		{"an anonymous token", "Bearer " + anonymousToken, http.StatusUnauthorized, `"code":"UNAUTHORIZED"`, `Bearer realm="` + s.RegistryRealm()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.Registry.URL+"/v2/acme/app/manifests/v1", nil)
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) ||
				!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), tc.challenge) {
				t.Errorf("%d %s (challenge %q), want %d with %s", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"), tc.status, tc.body)
			}
		})
	}
}

// registryToken asks the realm for a token for scope, logged in as user
// with pat, or anonymously when user is "".
func registryToken(t *testing.T, s *Server, scope, user, pat string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.RegistryRealm()+"?service="+s.RegistryService()+"&scope="+scope, nil)
	if user != "" {
		req.SetBasicAuth(user, pat)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("realm: %d %v", resp.StatusCode, err)
	}
	return tok.Token
}

// Installation tokens come in GitHub's stateless shape unless the rollout
// (SetTokenFormat) or the request's X-GitHub-Stateless-S2S-Token says
// otherwise, and either shape authenticates.
func TestInstallationTokensHaveGitHubsShapes(t *testing.T) {
	key, _, err := NewAppKey()
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer()
	defer s.Close()
	s.AddApp(7, &key.PublicKey)
	s.AddInstallation(AppInstallation{ID: 70, AppID: 7, Account: Account{Login: "acme", ID: 2, Type: "Organization"},
		Permissions: map[string]string{"packages": "read", "metadata": "read"}, Repositories: []string{"app", "base", "tools"}})
	stateless := regexp.MustCompile(`^ghs_7_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
	stateful := regexp.MustCompile(`^ghs_[A-Za-z0-9]{36}$`)
	github := regexp.MustCompile(`^ghs_[A-Za-z0-9._-]{36,}$`) // GitHub's pattern for both
	mint := func(header, body string) string {
		t.Helper()
		now := time.Now()
		jwtStr, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{Issuer: "7",
			IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"app/installations/70/access_tokens", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+jwtStr)
		if header != "" {
			req.Header.Set(StatelessTokenHeader, header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var tok struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("mint: %d %v", resp.StatusCode, err)
		}
		return tok.Token
	}
	works := func(tok string) bool {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"installation/repositories", nil)
		req.Header.Set("Authorization", "token "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	lengths := map[int]bool{}
	for _, tc := range []struct {
		name    string
		rollout TokenFormat
		header  string
		body    string
		want    *regexp.Regexp
	}{
		{"the default: stateless", "", "", "", stateless},
		{"stateless, two repositories", "", "", `{"repositories":["app","base"]}`, stateless},
		{"stateless, three repositories and a narrower permission", "", "", `{"repositories":["app","base","tools"],"permissions":{"packages":"read"}}`, stateless},
		{"the header asks for the stateful shape", "", "disabled", "", stateful},
		{"an unknown header value is ignored", "", "false", "", stateless},
		{"the rollout has not reached the App", TokenFormatStateful, "", "", stateful},
		{"the header asks for the stateless shape before the rollout", TokenFormatStateful, "enabled", "", stateless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rollout != "" {
				s.SetTokenFormat(tc.rollout)
				defer s.SetTokenFormat(TokenFormatStateless)
			}
			tok := mint(tc.header, tc.body)
			if !tc.want.MatchString(tok) || !github.MatchString(tok) {
				t.Errorf("token %q (%d characters) does not match %s", tok, len(tok), tc.want)
			}
			if tc.want == stateless {
				lengths[len(tok)] = true
				if len(tok) < 400 || len(tok) > 700 {
					t.Errorf("a stateless token of %d characters, want about 520", len(tok))
				}
			}
			if !works(tok) {
				t.Error("the minted token does not authenticate")
			}
		})
	}
	if len(lengths) < 2 {
		t.Errorf("stateless tokens of lengths %v: their length should vary with what they carry", lengths)
	}
}

// ghcr.io's /token answers GET only: the OAuth2 POST containerd tries first
// gets 405, counted, so that it falls back to GET.
func TestTheRealmRefusesPOSTWith405(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddPAT("ghp_reader", IssuedPAT{Owner: Account{Login: "octo", ID: 1, Type: "User"}, Scopes: []string{"read:packages"}})
	form := url.Values{"grant_type": {"password"}, "username": {"octo"}, "password": {"ghp_reader"},
		"service": {s.RegistryService()}, "scope": {"repository:octo/app:pull"}, "client_id": {"containerd-client"}}
	resp, err := http.PostForm(s.RegistryRealm(), form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" || strings.Contains(string(body), "token") {
		t.Errorf("POST /token: %d (Allow %q) %s, want 405 with Allow: GET and no token", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
	if registryToken(t, s, "repository:octo/app:pull", "octo", "ghp_reader") == "" {
		t.Error("GET /token gave no token")
	}
	if post, get := s.Calls(RouteRegistryTokenPOST), s.Calls(RouteRegistryToken); post != 1 || get != 1 {
		t.Errorf("counted %d POSTs and %d GETs, want 1 and 1", post, get)
	}
	if got := s.TokenRequests(); len(got) != 2 || got[0].Method != http.MethodPost || got[0].Status != http.StatusMethodNotAllowed ||
		got[1].Method != http.MethodGet || got[1].Status != http.StatusOK || got[1].Login != "pat" {
		t.Errorf("the realm's log: %+v, want the POST refused 405, then the PAT's GET answered 200", got)
	}
}
