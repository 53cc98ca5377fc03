package registrytoken

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// passwordGrant asks, as containerd and crane do, for a token and a refresh
// token with a user name and password.
func (f *fixture) passwordGrant(user, password string) *httptest.ResponseRecorder {
	return f.post(url.Values{"grant_type": {"password"}, "username": {user}, "password": {password}, "service": {"reg"},
		"client_id": {"crane"}, "access_type": {"offline"}, "scope": {"repository:acme/app:pull"}})
}

// refresh asks for a token, and a new refresh token, with a refresh token.
func (f *fixture) refresh(refreshToken string) *httptest.ResponseRecorder {
	return f.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "service": {"reg"},
		"client_id": {"crane"}, "access_type": {"offline"}, "scope": {"repository:acme/app:pull"}})
}

// refreshToken takes the refresh token out of a 200 answer.
func refreshTokenOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rt, _ := body(t, rec)["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh token: %s", rec.Body)
	}
	return rt
}

// expiryOfRefresh is when a refresh token says it expires.
func expiryOfRefresh(t *testing.T, raw string) time.Time {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	return c.Expiry.Time()
}

// refused wants the refresh refused as RFC 6749 says (400 invalid_grant):
// never 403, on which containerd would not fall back to a GET.
func refused(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusBadRequest || body(t, rec)["error"] != "invalid_grant" {
		t.Errorf("%s: %d %s, want 400 invalid_grant", what, rec.Code, rec.Body)
	}
}

// TestARefreshTokenIsNoBetterThanTheCredentialItCameFrom plays someone who
// keeps a refresh token after the credential that obtained it is gone: a
// robot's password of periods ago, a builder Pod that was deleted, a
// ServiceAccount token that expired. Each refresh is refused, and no
// refresh token reaches past the credential's own end.
func TestARefreshTokenIsNoBetterThanTheCredentialItCameFrom(t *testing.T) {
	t.Run("a robot's, after the robot's period ended", func(t *testing.T) {
		f := newFixture(t, owners{})
		robots, err := NewRobotPasswords(bytes.Repeat([]byte{7}, 32), 10*time.Minute, "registry.internal:5000", f.clock)
		if err != nil {
			t.Fatal(err)
		}
		f.svc.cfg.Robots = robots
		robot := robots.Robot("web")
		end := robots.NextRotation().Add(10 * time.Minute) // its period's and the next's
		rt := refreshTokenOf(t, f.passwordGrant(robot.Username, robot.Password))
		if exp := expiryOfRefresh(t, rt); exp.After(end) {
			t.Errorf("the refresh token expires %v, after the robot's credential (%v)", exp, end)
		}
		f.clock.SetTime(end.Add(-time.Second))
		rt = refreshTokenOf(t, f.refresh(rt)) // still its credential's life
		f.clock.SetTime(end.Add(time.Second))
		if rec := f.getAs("reg", robot.Username, robot.Password); rec.Code != http.StatusUnauthorized {
			t.Fatalf("the robot itself: %d, want 401", rec.Code)
		}
		refused(t, "a refresh after the robot's period ended", f.refresh(rt))
	})
	t.Run("a ServiceAccount's, once its Pod is deleted", func(t *testing.T) {
		f := newFixture(t, owners{})
		rt := refreshTokenOf(t, f.passwordGrant("serviceaccount", podToken(t, "web-token", f.clock.Now().Add(2*time.Hour))))
		for range 50 { // a client refreshing in a loop
			rt = refreshTokenOf(t, f.refresh(rt))
		}
		if n := f.pods.checks(); n != 1 {
			t.Errorf("50 refreshes within %s asked about the Pod %d times, want once", PodCheckTTL, n)
		}
		f.pods.delete("web", "app")
		f.clock.SetTime(f.clock.Now().Add(PodCheckTTL + time.Second)) // the last answer is stale
		refused(t, "a refresh after the Pod was deleted", f.refresh(rt))
	})
	t.Run("a ServiceAccount's, kept refreshing past its token's expiry", func(t *testing.T) {
		f := newFixture(t, owners{})
		start := f.clock.Now()
		saExpiry := start.Add(70 * time.Minute)
		rt := refreshTokenOf(t, f.passwordGrant("serviceaccount", podToken(t, "web-token", saExpiry)))
		for _, at := range []time.Duration{20 * time.Minute, 40 * time.Minute, 60 * time.Minute, 69 * time.Minute} {
			f.clock.SetTime(start.Add(at))
			rt = refreshTokenOf(t, f.refresh(rt))
			if exp := expiryOfRefresh(t, rt); exp.After(saExpiry) {
				t.Fatalf("refreshed at +%s: the new refresh token expires %v, after the ServiceAccount token (%v)", at, exp, saExpiry)
			}
		}
		f.clock.SetTime(saExpiry.Add(time.Second))
		refused(t, "a refresh after the ServiceAccount token expired", f.refresh(rt))
	})
	t.Run("a refresh token without its credential's bounds (signed by the service before)", func(t *testing.T) {
		f := newFixture(t, owners{})
		legacy, err := jwt.Signed(f.keys.signing).Claims(jwt.Claims{Issuer: "credbroker", Subject: "system:serviceaccount:web:default",
			Audience: jwt.Audience{"reg#refresh"}, Expiry: jwt.NewNumericDate(f.clock.Now().Add(time.Hour))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		refused(t, "a refresh token that says nothing of its credential", f.refresh(legacy))
	})
}

// TestRefusalsAreAuditedWithoutTheSecret: every refused authentication is
// an audit log line that says who tried and why, and no password, token
// or refresh token reaches the log or the answer.
func TestRefusalsAreAuditedWithoutTheSecret(t *testing.T) {
	f := newFixture(t, owners{})
	var logs bytes.Buffer
	f.svc.log = slog.New(slog.NewJSONHandler(&logs, nil))
	robots := f.withRobots(t)
	robot := robots.Robot("web")
	saToken := podToken(t, "web-token", f.clock.Now().Add(2*time.Hour))
	rt := refreshTokenOf(t, f.passwordGrant(robot.Username, robot.Password))
	secrets := []string{robot.Password, saToken, rt, "forged-token"}
	f.pods.delete("web", "app")
	saRT := refreshTokenOf(t, f.passwordGrant("serviceaccount", saToken))
	secrets = append(secrets, saRT)
	for _, tc := range []struct {
		name string
		rec  *httptest.ResponseRecorder
		want string
	}{
		{"GET with a robot's wrong password", f.getAs("reg", robot.Username, robot.Password+"x"), `"robot":"` + robot.Username + `"`},
		{"GET with a token the API server refuses", f.get("reg", "forged-token"), `"flow":"GET"`},
		{"POST password with a robot's wrong password", f.passwordGrant(robot.Username, "x"+robot.Password), `"flow":"POST password"`},
		{"POST refresh_token for a deleted Pod", f.refresh(saRT), `was deleted`},
	} {
		if tc.rec.Code == http.StatusOK || tc.rec.Code == http.StatusForbidden {
			t.Errorf("%s: %d, want a refusal containerd falls back from (400, 401)", tc.name, tc.rec.Code)
		}
		line := ""
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"result":"refused"`) && strings.Contains(l, tc.want) {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, `"msg":"audit"`) {
			t.Errorf("%s: no audit line with %s in\n%s", tc.name, tc.want, logs.String())
		}
		for _, s := range secrets {
			if strings.Contains(tc.rec.Body.String(), s) {
				t.Errorf("%s: the answer holds a secret", tc.name)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a secret (%.8s…) reached the log", s)
		}
	}
}

// TestARobotsPasswordIsRedactedAsATokenIs: a robot credential, and the
// key robots derive from, print and log as a fingerprint, as
// broker.Credential does.
func TestARobotsPasswordIsRedactedAsATokenIs(t *testing.T) {
	f := newFixture(t, owners{})
	robots := f.withRobots(t)
	robot := robots.Robot("web")
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("robot", slog.Any("robot", robot), slog.Any("robots", robots))
	err := fmt.Errorf("write the Secret with %v", robot)
	out := strings.Join([]string{logs.String(), err.Error(), fmt.Sprintf("%v %+v %#v %s", robot, robot, robot, robot),
		fmt.Sprintf("%v %+v %#v", robots, robots, robots), fmt.Sprint([]any{robot})}, "\n")
	if strings.Contains(out, robot.Password) || strings.Contains(out, "[7 7 7") || strings.Contains(out, "\\a\\a\\a") {
		t.Errorf("a robot's password or its key printed:\n%s", out)
	}
	if !strings.Contains(out, robot.Username) {
		t.Errorf("the robot's name, which is no secret, is missing:\n%s", out)
	}
}
