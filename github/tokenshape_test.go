package github_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
)

// statelessShaped is a 520-character installation token of GitHub's 2026
// shape, ghs_<app id>_<JWT>, holding each of '.', '-' and '_' in its body:
// what a redaction that knew only [A-Za-z0-9] would cut short.
var statelessShaped = func() string {
	head := "ghs_1234_eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJ-aW5zdGFsbGF0aW9uX2lk_"
	tail := ".c2lnbmF0dXJl-c2ln_bmF0dXJl"
	return head + strings.Repeat("Ab0-_", (520-len(head)-len(tail))/5) + strings.Repeat("x", (520-len(head)-len(tail))%5) + tail
}()

// leaks reports a piece of token (any 12 characters of it) in text.
func leaks(text, token string) (string, bool) {
	const window = 12
	for i := 0; i+window <= len(token); i++ {
		if strings.Contains(text, token[i:i+window]) {
			return token[i : i+window], true
		}
	}
	return "", false
}

// A stateless installation token goes everywhere a token goes: minted,
// probed, rechecked, revoked, rendered into a pull Secret, sealed, logged
// and formatted. Nothing assumes its length or alphabet, and no piece of
// it survives in a log line, an error or a formatted value.
func TestStatelessTokensPassEveryPathAndNeverLeak(t *testing.T) {
	if len(statelessShaped) != 520 || !regexp.MustCompile(`^ghs_[A-Za-z0-9._-]{36,}$`).MatchString(statelessShaped) ||
		strings.Count(statelessShaped, ".") != 2 || !strings.Contains(statelessShaped, "-") || strings.Count(statelessShaped, "_") < 3 {
		t.Fatalf("the fixture token is not of the stateless shape: %d characters", len(statelessShaped))
	}
	ctx := context.Background()
	f := newFixture(t)
	f.gh.AcceptAppTokens(true)
	f.gh.AddImage("acme/api", "v1")
	minted := mintOld(t, f)
	if !regexp.MustCompile(`^ghs_1234_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`).MatchString(minted.Token) {
		t.Fatalf("the emulator minted %d characters not of the stateless shape", len(minted.Token))
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	text := slog.New(slog.NewTextHandler(&logs, nil))
	prober := github.NewPullProber(github.PullProberConfig{Clock: f.clock, Timeout: 5 * time.Second, Recheck: f.client.Recheck})
	image := f.gh.RegistryHost() + "/acme/api:v1"

	// The minted token works: probe, recheck, and it renders whole.
	if err := prober.Probe(ctx, minted, image); err != nil {
		t.Fatalf("probe with a stateless token: %v", err)
	}
	if err := f.client.Recheck(ctx, minted); err != nil {
		t.Fatalf("recheck of a stateless token: %v", err)
	}
	sealer, err := broker.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{minted.Token, statelessShaped} {
		cred := broker.Credential{Kind: broker.KindGitHubApp, Username: broker.AppTokenUsername, Token: token, IssuedAt: f.clock.Now().Add(-time.Hour), ExpiresAt: f.clock.Now().Add(time.Hour)}
		var cfg struct {
			Auths map[string]struct{ Username, Password, Auth string }
		}
		rendered := broker.DockerConfigJSON([]string{"ghcr.io"}, cred)
		if err := json.Unmarshal(rendered, &cfg); err != nil {
			t.Fatal(err)
		}
		entry := cfg.Auths["ghcr.io"]
		auth, _ := base64.StdEncoding.DecodeString(entry.Auth)
		if entry.Password != token || string(auth) != broker.AppTokenUsername+":"+token {
			t.Errorf("the pull Secret does not carry the %d-character token whole", len(token))
		}
		t.Logf("a %d-character token: auth %d bytes, .dockerconfigjson %d bytes for one registry", len(token), len(entry.Auth), len(rendered))
		sealed, err := sealer.Seal("acme", token)
		if err != nil {
			t.Fatal(err)
		}
		if opened, err := sealer.Open("acme", sealed); err != nil || opened != token {
			t.Errorf("sealed and opened, the %d-character token comes back as %d characters (%v)", len(token), len(opened), err)
		}

		// Where it must not show: formatted, logged, in errors.
		log.Info("credential", slog.Any("credential", cred))
		text.Info("credential", "credential", cred)
		shown := []string{fmt.Sprint(cred), fmt.Sprintf("%v %+v %#v %s", cred, cred, cred, cred), logs.String()}
		f.gh.Revoke(token)
		for _, err := range []error{
			prober.Probe(ctx, cred, image),
			prober.Login(ctx, cred, f.gh.RegistryHost()),
			f.client.Recheck(ctx, cred),
			f.client.RevokeInstallationToken(ctx, cred.Token),
		} {
			if err == nil {
				t.Errorf("a revoked %d-character token was taken", len(token))
				continue
			}
			shown = append(shown, err.Error(), fmt.Sprintf("%+v %#v", err, err))
		}
		for _, s := range shown {
			if piece, ok := leaks(s, token); ok {
				t.Errorf("%q of the token shows in: %s", piece, s)
			}
		}
	}
	if posts := f.gh.Calls(emulator.RouteRegistryTokenPOST); posts != 0 {
		t.Errorf("the prober POSTed %d times to the realm; ghcr.io answers GET only", posts)
	}
}

// The App JWT names the App by its client ID when one is configured (as
// GitHub recommends), else by its id; GitHub (the emulator) takes either
// and refuses an issuer that names no App.
func TestTheAppJWTIssuer(t *testing.T) {
	key, _ := testAppKey(t)
	const clientID = "Iv23liAcmeApp0001234"
	for _, tc := range []struct {
		name     string
		appID    int64
		clientID string
		wantIss  string
		want     broker.Reason
	}{
		{"the App id", appID, "", "1234", ""},
		{"the client ID, with the App id", appID, clientID, clientID, ""},
		{"the client ID alone", 0, clientID, clientID, ""},
		{"a client ID GitHub does not know", appID, "Iv23liSomeoneElse000", "Iv23liSomeoneElse000", broker.ReasonAppCredentialsRejected},
		{"an App id GitHub does not know", 4321, "", "4321", broker.ReasonAppCredentialsRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.gh.SetAppClientID(appID, clientID)
			seen := &issuers{next: http.DefaultTransport}
			c, err := github.New(github.Config{BaseURL: f.gh.URL(), AppID: tc.appID, AppClientID: tc.clientID, PrivateKey: key,
				Clock: f.clock, CallTimeout: 5 * time.Second, Transport: seen})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Installation(context.Background(), installationID)
			assertOutcome(t, f.record(err), tc.want)
			_, err = c.MintInstallationToken(context.Background(), installationID, nil, nil)
			assertOutcome(t, f.record(err), tc.want)
			if got := seen.all(); len(got) != 2 || got[0] != tc.wantIss || got[1] != tc.wantIss {
				t.Errorf("the App JWTs named %q, want %q", got, tc.wantIss)
			}
		})
	}
}

// issuers records the iss of every App JWT sent.
type issuers struct {
	next http.RoundTripper
	mu   sync.Mutex
	iss  []string
}

func (i *issuers) RoundTrip(req *http.Request) (*http.Response, error) {
	if raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		var claims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err == nil {
			i.mu.Lock()
			i.iss = append(i.iss, claims.Issuer)
			i.mu.Unlock()
		}
	}
	return i.next.RoundTrip(req)
}

func (i *issuers) all() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.iss...)
}

func TestValidateClientID(t *testing.T) {
	for _, tc := range []struct {
		id, want string
	}{
		{"", ""},
		{"Iv23liAcmeApp0001234", ""},
		{"Iv1.0123456789abcdef", ""},
		{"1234", "is a number"},
		{"Iv23li acme", "want letters, digits"},
		{"Iv23li\n", "want letters, digits"},
		{strings.Repeat("a", 101), "at most 100"},
	} {
		err := github.ValidateClientID(tc.id)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidateClientID(%q) = %v, want %q", tc.id, err, tc.want)
		}
	}
}
