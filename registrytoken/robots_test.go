package registrytoken

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// withRobots gives the service robots of registry.internal:5000 that
// rotate daily, on the fixture's clock.
func (f *fixture) withRobots(t testing.TB) *RobotPasswords {
	t.Helper()
	robots, err := NewRobotPasswords(bytes.Repeat([]byte{7}, 32), 24*time.Hour, "registry.internal:5000", f.clock)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Robots = robots
	return robots
}

// TestRobotsPullTheirNamespacesImagesForTwoPeriods: a namespace's robot
// gets its tenant's pull grants (never a push, though its tenant allows
// ServiceAccounts to); its credential holds for the period it was
// made in and the next; another namespace's name with it, or a password
// of two periods ago, gets nothing.
func TestRobotsPullTheirNamespacesImagesForTwoPeriods(t *testing.T) {
	f := newFixture(t, owners{})
	robots := f.withRobots(t)
	web := robots.Robot("web")
	if web.Host != "registry.internal:5000" || !strings.HasPrefix(web.Username, "credbroker-robot.web.") || len(web.Password) < 40 {
		t.Fatalf("robot %+v", web)
	}
	if next := robots.NextRotation(); !next.After(f.clock.Now()) || next.Sub(f.clock.Now()) > 24*time.Hour {
		t.Errorf("next rotation %v", next)
	}
	ask := func(user, password string) (int, []string) {
		rec := f.getAs("reg", user, password, "repository:acme/app:pull,push", "repository:cluster.local/web/tool:pull", "repository:shop/app:pull")
		if rec.Code != http.StatusOK {
			return rec.Code, nil
		}
		return rec.Code, granted(f.verify(t, body(t, rec)["token"].(string)))
	}
	want := []string{"repository:acme/app:pull", "repository:cluster.local/web/tool:pull"}
	if code, got := ask(web.Username, web.Password); code != 200 || !slices.Equal(got, want) {
		t.Errorf("the robot of web: %d %v, want %v", code, got, want)
	}
	other := robots.Robot("other")
	for _, tc := range []struct{ name, user, password string }{
		{"web's password under other's name", other.Username, web.Password},
		{"a password with a byte changed", web.Username, web.Password[:len(web.Password)-1] + "x"},
		{"a robot name that is not one", "credbroker-robot.web", web.Password},
		{"a robot of a namespace name that cannot be", "credbroker-robot.Web.1", web.Password},
	} {
		if code, _ := ask(tc.user, tc.password); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", tc.name, code)
		}
	}
	f.clock.SetTime(f.clock.Now().Add(24 * time.Hour))
	if code, got := ask(web.Username, web.Password); code != 200 || !slices.Equal(got, want) {
		t.Errorf("the robot of the period before: %d %v", code, got)
	}
	if robots.Robot("web") == web {
		t.Error("the robot did not rotate with the period")
	}
	f.clock.SetTime(f.clock.Now().Add(24 * time.Hour))
	if code, _ := ask(web.Username, web.Password); code != http.StatusUnauthorized {
		t.Errorf("a robot of two periods ago: %d, want 401", code)
	}
	for _, bad := range []struct {
		key    []byte
		period time.Duration
		host   string
	}{{make([]byte, 16), time.Hour, "r"}, {make([]byte, 32), time.Second, "r"}, {make([]byte, 32), time.Hour, ""}} {
		if _, err := NewRobotPasswords(bad.key, bad.period, bad.host, clocktesting.NewFakePassiveClock(time.Now())); err == nil {
			t.Errorf("NewRobotPasswords(%d bytes, %s, %q) made robots", len(bad.key), bad.period, bad.host)
		}
	}
}
