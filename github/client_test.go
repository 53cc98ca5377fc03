package github_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
	jwt "github.com/golang-jwt/jwt/v4"
)

// newClock is a settable clock shared by the emulator and the client.
func newClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
}

const (
	appID          = 1234
	installationID = 42
	patToken       = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
)

var (
	appKeyOnce sync.Once
	appKey     *rsa.PrivateKey
	appKeyPEM  []byte
)

// testAppKey is generated once: RSA key generation is slow.
func testAppKey(t testing.TB) (*rsa.PrivateKey, []byte) {
	t.Helper()
	appKeyOnce.Do(func() {
		var err error
		if appKey, appKeyPEM, err = emulator.NewAppKey(); err != nil {
			t.Fatal(err)
		}
	})
	return appKey, appKeyPEM
}

type fixture struct {
	gh     *emulator.Server
	client *github.Client
	clock  *clocktesting.FakeClock
	// errs collects every error the test saw, to check none leaks a secret.
	errs []error
}

// newFixture starts an emulator with App 1234 installed on org acme
// (installation 42, packages: read) and a PAT of user octo.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	key, _ := testAppKey(t)
	f := &fixture{gh: emulator.NewServer(), clock: newClock()}
	t.Cleanup(f.gh.Close)
	f.gh.SetClock(f.clock)
	f.gh.AddApp(appID, &key.PublicKey)
	f.gh.AddInstallation(emulator.AppInstallation{
		ID: installationID, AppID: appID,
		Account:     emulator.Account{Login: "acme", ID: 1001, Type: "Organization"},
		Permissions: map[string]string{"packages": "read", "metadata": "read"},
	})
	f.gh.AddPAT(patToken, emulator.IssuedPAT{
		Owner:  emulator.Account{Login: "octo", ID: 7, Type: "User"},
		Scopes: []string{"read:packages", "repo"},
	})
	f.client = f.newClient(t, key)
	t.Cleanup(func() { f.assertNoSecretInErrors(t) })
	return f
}

func (f *fixture) newClient(t *testing.T, key *rsa.PrivateKey) *github.Client {
	t.Helper()
	c, err := github.New(github.Config{BaseURL: f.gh.URL(), AppID: appID, PrivateKey: key, Clock: f.clock, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// skewGitHub moves GitHub's clock by d while the client keeps the time it
// had: the client dates its App JWTs by its own clock.
func (f *fixture) skewGitHub(t *testing.T, d time.Duration) {
	t.Helper()
	key, _ := testAppKey(t)
	mine := f.clock.Now()
	c, err := github.New(github.Config{BaseURL: f.gh.URL(), AppID: appID, PrivateKey: key, Clock: clocktesting.NewFakePassiveClock(mine), CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.client = c
	f.clock.Step(d)
}

func (f *fixture) record(err error) error {
	if err != nil {
		f.errs = append(f.errs, err)
	}
	return err
}

func (f *fixture) assertNoSecretInErrors(t *testing.T) {
	// Any token prefix at all, not only the tokens this fixture knows of.
	secrets := append(f.gh.Tokens(), patToken, "-----BEGIN", "ghp_", "ghs_", "github_pat_")
	for _, err := range f.errs {
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error text leaks a secret: %v", err)
			}
		}
	}
}

// assertOutcome checks a call's result: success when want is "", else a
// failure with reason want.
func assertOutcome(t *testing.T, err error, want broker.Reason) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected failure: %v", err)
	case want != "" && err == nil:
		t.Fatalf("succeeded, want a %s failure", want)
	case want != "":
		assertReason(t, err, want)
	}
}

func assertReason(t *testing.T, err error, want broker.Reason) {
	t.Helper()
	if got := broker.ReasonOf(err); got != want {
		t.Errorf("reason %q (%v), want %q", got, err, want)
	}
}

func TestMintInstallationToken(t *testing.T) {
	f := newFixture(t)
	f.gh.SetTokenLifetime(20 * time.Minute)
	cred, err := f.client.MintInstallationToken(context.Background(), installationID, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cred.Token, "ghs_") || cred.Username != "x-access-token" || cred.Kind != broker.KindGitHubApp {
		t.Errorf("credential = %v", cred)
	}
	if want := f.clock.Now().Add(20 * time.Minute); !cred.ExpiresAt.Equal(want) {
		t.Errorf("expires at %v, want %v (the emulator's lifetime)", cred.ExpiresAt, want)
	}
	if len(cred.Permissions) != 1 || cred.Permissions["packages"] != "read" {
		t.Errorf("granted %v, want only packages: read (least privilege by default)", cred.Permissions)
	}
	if n := f.gh.Calls(emulator.RouteMintToken); n != 1 {
		t.Errorf("emulator counted %d mints, want 1", n)
	}
	if err := f.client.RevokeInstallationToken(context.Background(), cred.Token); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	err = f.record(f.client.RevokeInstallationToken(context.Background(), cred.Token))
	assertReason(t, err, broker.ReasonTokenRevoked)
}

func TestInstallationLookup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inst, err := f.client.Installation(ctx, installationID)
	if err != nil {
		t.Fatal(err)
	}
	want := broker.Owner{Login: "acme", ID: 1001, Type: broker.OwnerOrganization}
	if inst.Account != want || inst.Suspended {
		t.Errorf("installation = %+v, want account %+v, not suspended", inst, want)
	}
	f.gh.SuspendInstallation(installationID)
	if inst, err = f.client.Installation(ctx, installationID); err != nil || !inst.Suspended {
		t.Errorf("after suspension: %+v, %v", inst, err)
	}
	// What the GitHub inbox asks before it acts on a delivery: the
	// account's current login, under the same id, and whether it is
	// suspended now.
	f.gh.RenameAccount(1001, "acme-corp")
	f.gh.UnsuspendInstallation(installationID)
	want.Login = "acme-corp"
	if inst, err = f.client.Installation(ctx, installationID); err != nil || inst.Account != want || inst.Suspended {
		t.Errorf("after a rename and the suspension lifted: %+v, %v; want account %+v, not suspended", inst, err, want)
	}
}

func TestFailuresCarryTheirReason(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup prepares the emulator; call makes the failing call.
		setup func(f *fixture)
		call  func(f *fixture) error
		want  broker.Reason
	}{
		{"installation not found", nil, func(f *fixture) error {
			_, err := f.client.MintInstallationToken(ctx, 999, nil, nil)
			return err
		}, broker.ReasonInstallationNotFound},
		{"installation deleted", func(f *fixture) { f.gh.DeleteInstallation(installationID) }, func(f *fixture) error {
			_, err := f.client.Installation(ctx, installationID)
			return err
		}, broker.ReasonInstallationNotFound},
		{"installation suspended", func(f *fixture) { f.gh.SuspendInstallation(installationID) }, func(f *fixture) error {
			_, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
			return err
		}, broker.ReasonInstallationSuspended},
		{"permission the installation lacks", nil, func(f *fixture) error {
			_, err := f.client.MintInstallationToken(ctx, installationID, map[string]string{"packages": "write"}, nil)
			return err
		}, broker.ReasonMissingScope},
		{"repository the installation lacks", func(f *fixture) {
			f.gh.AddInstallation(emulator.AppInstallation{ID: 43, AppID: appID, Account: emulator.Account{Login: "acme", ID: 1001, Type: "Organization"},
				Permissions: map[string]string{"packages": "read"}, Repositories: []string{"api"}})
		}, func(f *fixture) error {
			_, err := f.client.MintInstallationToken(ctx, 43, nil, []string{"secret-repo"})
			return err
		}, broker.ReasonMissingScope},
		{"PAT revoked", func(f *fixture) { f.gh.Revoke(patToken) }, func(f *fixture) error {
			_, err := f.client.ValidatePAT(ctx, patToken)
			return err
		}, broker.ReasonTokenRevoked},
		{"PAT expired", func(f *fixture) {
			f.gh.AddPAT(patToken, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: 7, Type: "User"},
				Scopes: []string{"read:packages"}, ExpiresAt: f.clock.Now().Add(-time.Minute)})
		}, func(f *fixture) error {
			_, err := f.client.ValidatePAT(ctx, patToken)
			return err
		}, broker.ReasonTokenRevoked},
		{"PAT without read:packages", func(f *fixture) {
			f.gh.AddPAT(patToken, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: 7, Type: "User"}, Scopes: []string{"repo"}})
		}, func(f *fixture) error {
			_, err := f.client.ValidatePAT(ctx, patToken)
			return err
		}, broker.ReasonMissingScope},
		{"fine-grained PAT", nil, func(f *fixture) error {
			_, err := f.client.ValidatePAT(ctx, "github_pat_11AAAAAAA0123456789")
			return err
		}, broker.ReasonFineGrainedPAT},
		{"GitHub answers 502", func(f *fixture) { f.gh.FailNext(http.StatusBadGateway) }, func(f *fixture) error {
			_, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
			return err
		}, broker.ReasonGitHubUnavailable},
		{"GitHub unreachable", func(f *fixture) { f.gh.API.Close() }, func(f *fixture) error {
			_, err := f.client.Installation(ctx, installationID)
			return err
		}, broker.ReasonGitHubUnavailable},
		{"App JWT signed with another key", nil, func(f *fixture) error {
			other, _, err := emulator.NewAppKey()
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.newClient(t, other).MintInstallationToken(ctx, installationID, nil, nil)
			return err
		}, broker.ReasonAppCredentialsRejected},
		{"App id GitHub does not know: 404 Integration not found is not a deleted installation", nil, func(f *fixture) error {
			key, _ := testAppKey(t)
			c, err := github.New(github.Config{BaseURL: f.gh.URL(), AppID: appID + 1, PrivateKey: key, Clock: f.clock, CallTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.MintInstallationToken(ctx, installationID, nil, nil)
			return err
		}, broker.ReasonAppCredentialsRejected},
		{"App JWT expired by GitHub's clock", func(f *fixture) { f.skewGitHub(t, time.Hour) }, func(f *fixture) error {
			_, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
			return err
		}, broker.ReasonAppCredentialsRejected},
		{"App JWT issued in the future by GitHub's clock", func(f *fixture) { f.skewGitHub(t, -time.Hour) }, func(f *fixture) error {
			_, err := f.client.Installation(ctx, installationID)
			return err
		}, broker.ReasonAppCredentialsRejected},
		{"primary rate limit", func(f *fixture) { f.gh.SetRateLimit(1) }, func(f *fixture) error {
			if _, err := f.client.Installation(ctx, installationID); err != nil {
				t.Fatalf("first call within the limit: %v", err)
			}
			_, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
			return err
		}, broker.ReasonRateLimited},
		{"secondary rate limit", func(f *fixture) { f.gh.SecondaryLimitNext(1, 90*time.Second) }, func(f *fixture) error {
			_, err := f.client.ValidatePAT(ctx, patToken)
			return err
		}, broker.ReasonRateLimited},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			assertOutcome(t, f.record(tc.call(f)), tc.want)
		})
	}
}

func TestRateLimitWaitsComeFromHeaders(t *testing.T) {
	ctx := context.Background()
	t.Run("primary: until X-RateLimit-Reset", func(t *testing.T) {
		f := newFixture(t)
		f.gh.SetRateLimit(1)
		if _, err := f.client.Installation(ctx, installationID); err != nil {
			t.Fatal(err)
		}
		f.clock.Step(20 * time.Minute)
		_, err := f.client.Installation(ctx, installationID)
		var rl *github.RateLimitError
		if !errors.As(f.record(err), &rl) || rl.Secondary {
			t.Fatalf("err = %v, want a primary *RateLimitError", err)
		}
		if rl.Wait != 40*time.Minute || broker.RetryAfterOf(err) != 40*time.Minute {
			t.Errorf("wait %v, want 40m (reset an hour after the first call, 20m passed)", rl.Wait)
		}
	})
	t.Run("secondary: Retry-After", func(t *testing.T) {
		f := newFixture(t)
		f.gh.SecondaryLimitNext(1, 90*time.Second)
		_, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
		var rl *github.RateLimitError
		if !errors.As(f.record(err), &rl) || !rl.Secondary || rl.Wait != 90*time.Second {
			t.Fatalf("err = %v, want a secondary *RateLimitError waiting 90s", err)
		}
		// While the wait runs, the client refuses without calling GitHub again.
		_, err = f.client.MintInstallationToken(ctx, installationID, nil, nil)
		assertReason(t, f.record(err), broker.ReasonRateLimited)
		if n := f.gh.Calls(emulator.RouteMintToken); n != 1 {
			t.Errorf("GitHub was called %d times during a secondary-limit wait, want 1", n)
		}
	})
	t.Run("secondary without Retry-After: a minute, not the hourly reset", func(t *testing.T) {
		f := newFixture(t)
		f.gh.SecondaryLimitNext(1, 0)
		_, err := f.client.MintInstallationToken(ctx, installationID, nil, nil)
		var rl *github.RateLimitError
		if !errors.As(f.record(err), &rl) || !rl.Secondary || rl.Wait != time.Minute {
			t.Fatalf("err = %v, want a secondary *RateLimitError waiting 1m (GitHub's advice)", err)
		}
	})
	t.Run("primary as 429", func(t *testing.T) {
		f := newFixture(t)
		f.gh.SetRateLimit(1)
		f.gh.SetRateLimitStatus(http.StatusTooManyRequests)
		if _, err := f.client.Installation(ctx, installationID); err != nil {
			t.Fatal(err)
		}
		_, err := f.client.Installation(ctx, installationID)
		var rl *github.RateLimitError
		if !errors.As(f.record(err), &rl) || rl.Secondary || rl.Wait != time.Hour {
			t.Fatalf("err = %v, want a primary *RateLimitError waiting until the reset (1h)", err)
		}
	})
	t.Run("one budget per credential", func(t *testing.T) {
		f := newFixture(t)
		f.gh.SetRateLimit(1)
		if _, err := f.client.Installation(ctx, installationID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.Installation(ctx, installationID); broker.ReasonOf(f.record(err)) != broker.ReasonRateLimited {
			t.Fatalf("the App's second call: %v, want its budget spent", err)
		}
		if _, err := f.client.ValidatePAT(ctx, patToken); err != nil {
			t.Errorf("a PAT has a budget of its own: %v", err)
		}
	})
}

func TestValidatePATReadsOwnerScopesAndExpiry(t *testing.T) {
	ctx := context.Background()
	expiry := time.Date(2027, 3, 1, 12, 30, 0, 0, time.UTC)
	for _, layout := range []string{emulator.ExpirationLayoutZone, emulator.ExpirationLayoutOffset} {
		t.Run(layout, func(t *testing.T) {
			f := newFixture(t)
			f.gh.SetExpirationLayout(layout)
			f.gh.AddPAT(patToken, emulator.IssuedPAT{Owner: emulator.Account{Login: "octo", ID: 7, Type: "User"},
				Scopes: []string{"repo", "write:packages"}, ExpiresAt: expiry})
			got, err := f.client.ValidatePAT(ctx, patToken)
			if err != nil {
				t.Fatal(err)
			}
			if !got.ExpiresAt.Equal(expiry) {
				t.Errorf("expiry %v, want %v", got.ExpiresAt, expiry)
			}
			if got.Owner != (broker.Owner{Login: "octo", ID: 7, Type: broker.OwnerUser}) || len(got.Scopes) != 2 {
				t.Errorf("PAT owner %+v", got)
			}
		})
	}
	f := newFixture(t)
	got, err := f.client.ValidatePAT(ctx, patToken)
	if err != nil || !got.ExpiresAt.IsZero() {
		t.Errorf("a PAT without expiry: %+v, %v", got, err)
	}
}

func TestLoadPrivateKey(t *testing.T) {
	_, pemKey := testAppKey(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ecKey := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIGVmtlv2SIb7jwCqb0rEWJRmGRyR2VtKHz2Iq6OYWdT0oAoGCCqGSM49\nAwEHoUQDQgAEdBk0ojFvE3lr7zcsTVZlQw3Jc7EXvIFc6qf7hXRmEikJX9P3xAk4\nk2ty3oN3LhHjYpu4Z2U0pU6G3BPrU1f6RA==\n-----END EC PRIVATE KEY-----\n"
	tests := []struct {
		name, path, wantErr string
	}{
		{"RSA PKCS#1", write("good.pem", pemKey), ""},
		{"missing file", filepath.Join(dir, "nope.pem"), "no such file"},
		{"not PEM", write("junk.pem", []byte("hello")), "no PEM block"},
		{"not RSA", write("ec.pem", []byte(ecKey)), "not a PKCS#1 or PKCS#8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := github.LoadPrivateKey(tc.path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

func TestRateLimitRemainingIsReported(t *testing.T) {
	f := newFixture(t)
	f.gh.SetRateLimit(100)
	key, _ := testAppKey(t)
	var seen []int
	c, err := github.New(github.Config{BaseURL: f.gh.URL(), AppID: appID, PrivateKey: key, Clock: f.clock,
		OnRateLimit: func(remaining int) { seen = append(seen, remaining) }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.MintInstallationToken(context.Background(), installationID, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ValidatePAT(context.Background(), patToken); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[99 98 99]" {
		t.Errorf("reported %v, want [99 98 99] (the App's budget, then the PAT's own)", seen)
	}
}

// A host clock up to 45 s off GitHub's, either way, still authenticates
// the App (GitHub refuses an iat in its future and an exp more than
// 10 minutes ahead); ghinstallation's own dating (iat 30 s back) failed at
// +45 s.
func TestAppJWTsSurviveASkewedHostClock(t *testing.T) {
	for _, skew := range []time.Duration{-45 * time.Second, 45 * time.Second} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			f := newFixture(t)
			f.skewGitHub(t, -skew) // the host is skew ahead of GitHub
			_, err := f.client.MintInstallationToken(context.Background(), installationID, nil, nil)
			if f.record(err) != nil {
				t.Errorf("host clock %v off GitHub's: %v", skew, err)
			}
		})
	}
}

// A token for selected repositories: GitHub lists them in its reply (by
// name or by repository_ids), tokens are longer than 40 characters, and a
// repository outside the installation is MISSING_SCOPE.
func TestMintForSelectedRepositories(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.gh.AddInstallation(emulator.AppInstallation{ID: 43, AppID: appID, Account: emulator.Account{Login: "acme", ID: 1001, Type: "Organization"},
		Permissions: map[string]string{"packages": "read"}, Repositories: []string{"api", "web"}})
	cred, err := f.client.MintInstallationToken(ctx, 43, nil, []string{"api"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cred.Token) <= 40 {
		t.Errorf("token of %d characters; the emulator mints longer ones, as GitHub will", len(cred.Token))
	}
	_, err = f.client.MintInstallationToken(ctx, 43, nil, []string{"ops"})
	assertReason(t, f.record(err), broker.ReasonMissingScope)

	// repository_ids, as GitHub documents them, with the reply's list.
	key, _ := testAppKey(t)
	jwtTok := appJWT(t, key, f.clock.Now())
	body := fmt.Sprintf(`{"repository_ids":[%d]}`, emulator.RepositoryID("web"))
	req, _ := http.NewRequest(http.MethodPost, f.gh.URL()+"app/installations/43/access_tokens", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+jwtTok)
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var reply struct {
		Selection    string `json:"repository_selection"`
		Repositories []struct {
			ID       int64  `json:"id"`
			FullName string `json:"full_name"`
		} `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("mint by repository_ids: %d %v", resp.StatusCode, err)
	}
	if reply.Selection != "selected" || len(reply.Repositories) != 1 || reply.Repositories[0].FullName != "acme/web" {
		t.Errorf("reply %+v, want the one selected repository acme/web", reply)
	}
}

// appJWT is an App JWT as GitHub documents it: iat 60 s back, exp
// 10 minutes ahead.
func appJWT(t *testing.T, key *rsa.PrivateKey, now time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{Issuer: fmt.Sprint(appID),
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute))}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A GitHub that accepts the connection and never answers costs a call its
// CallTimeout, and the failure says GitHub is unavailable (temporary), so
// the renewal backs off and retries instead of hanging the refresher.
func TestAGitHubThatNeverAnswersTimesOut(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	key, _ := testAppKey(t)
	c, err := github.New(github.Config{BaseURL: hung.URL, AppID: appID, PrivateKey: key, CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.MintInstallationToken(context.Background(), installationID, nil, nil)
	var gerr *github.Error
	if took := time.Since(start); broker.ReasonOf(err) != broker.ReasonGitHubUnavailable || !errors.As(err, &gerr) || !gerr.Temporary || took > 3*time.Second {
		t.Errorf("after %v: %v, want a temporary GITHUB_UNAVAILABLE at the 300 ms call timeout", took, err)
	}
}
