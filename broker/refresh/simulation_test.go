package refresh_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/notify"
	"github.com/credbroker/credbroker/broker/refresh"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
)

// The Refresher against the GitHub emulator through the real GitHub client,
// everything on one fake clock (the emulator checks App JWTs and dates
// tokens by it), with the bbolt store: hours of refreshes in a second.

// namespaceSink stands in for the Syncer: each tenant is bound to
// namespacesPerTenant namespaces, and a publication writes to all of them.
type namespaceSink struct {
	mu        sync.Mutex
	published map[string]broker.Credential
	writes    int
	reports   int
}

const namespacesPerTenant = 10

func (s *namespaceSink) Bind(context.Context, broker.Tenant) {}
func (s *namespaceSink) Publish(_ context.Context, t broker.Tenant, p broker.SecretPayload) error {
	c := p.Credential
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.published[t.ID].Token != c.Token {
		s.writes += namespacesPerTenant
	}
	s.published[t.ID] = c
	return nil
}
func (s *namespaceSink) Remove(context.Context, string) error     { return nil }
func (s *namespaceSink) PublishedAll()                            {}
func (s *namespaceSink) Namespaces(string) []broker.NamespaceSync { return nil }
func (s *namespaceSink) Report(string, broker.Reason, string) {
	s.mu.Lock()
	s.reports++
	s.mu.Unlock()
}

// expired returns a tenant whose published credential has expired at now.
func (s *namespaceSink) expired(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.published {
		if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
			return id
		}
	}
	return ""
}

type sim struct {
	t        *testing.T
	clock    *clocktesting.FakeClock
	gh       *emulator.Server
	demo     emulator.Demo
	store    *boltstore.Store
	sealer   *broker.Sealer
	registry *broker.Tenants
	client   *github.Client
	sink     *namespaceSink
	r        *refresh.Refresher
}

func newSim(t *testing.T) *sim {
	t.Helper()
	gh, demo, err := emulator.NewDemo()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	s := &sim{t: t, clock: clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)), gh: gh, demo: demo,
		sink: &namespaceSink{published: map[string]broker.Credential{}}}
	gh.SetClock(s.clock)
	if s.store, err = boltstore.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.store.Close() })
	if s.sealer, err = broker.NewSealer(make([]byte, broker.KeySize)); err != nil {
		t.Fatal(err)
	}
	s.client, err = github.New(github.Config{BaseURL: gh.URL(), AppID: demo.AppID, PrivateKey: demo.AppKey, Clock: s.clock})
	if err != nil {
		t.Fatal(err)
	}
	s.registry = broker.NewTenants(s.store, s.sealer, s.client, s.clock, broker.TenantsConfig{})
	s.start()
	return s
}

// start starts a Refresher afresh, as a restarted broker would.
func (s *sim) start() {
	log := slog.New(slog.DiscardHandler)
	notifier := notify.NewNotifier(s.store, true, s.clock, nil, log)
	if err := notifier.Load(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.r = refresh.New(refresh.Config{Clock: s.clock, Notifier: notifier, Credentials: s.store, Sealer: s.sealer, Revoker: s.client},
		s.registry, s.client, s.sink, log)
}

func (s *sim) addAppTenants(n int) {
	s.t.Helper()
	for i := range n {
		_, _, err := s.registry.Create(context.Background(), broker.Tenant{ID: fmt.Sprintf("app-%02d", i),
			Owner: broker.Owner{Login: s.demo.Org.Login, ID: s.demo.Org.ID, Type: broker.OwnerOrganization},
			App:   &broker.GitHubApp{InstallationID: s.demo.InstallationID}})
		if err != nil {
			s.t.Fatal(err)
		}
	}
}

// run steps the Refresher from wake-up to wake-up until d has passed,
// failing the test if an expired credential is ever left published while
// GitHub answers.
func (s *sim) run(d time.Duration, expiredOK bool) {
	s.t.Helper()
	ctx := context.Background()
	end := s.clock.Now().Add(d)
	for {
		next := s.r.Step(ctx)
		if id := s.sink.expired(s.clock.Now()); id != "" && !expiredOK {
			s.t.Fatalf("at %v tenant %s has an expired credential published", s.clock.Now(), id)
		}
		if !next.Before(end) {
			s.clock.SetTime(end)
			s.r.Step(ctx)
			return
		}
		s.clock.SetTime(next)
	}
}

func (s *sim) events() []broker.Event {
	s.t.Helper()
	evs, err := s.store.EventsAfter(context.Background(), "", 10000)
	if err != nil {
		s.t.Fatal(err)
	}
	return evs
}

func count(evs []broker.Event, typ broker.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func TestRefreshOverADayOfSimulatedTime(t *testing.T) {
	s := newSim(t)
	s.addAppTenants(100 / namespacesPerTenant)
	s.run(24*time.Hour, false)
	mints := s.gh.Calls(emulator.RouteMintToken)
	perHour := float64(mints) / 24
	t.Logf("100 namespaces (10 tenants) of one installation over 24 h: %d mints = %.2f per hour, %d Secret writes", mints, perHour, s.sink.writes)
	if perHour > 1.25 || mints < 24 {
		t.Errorf("%d mints in 24 h = %.2f per hour, want at least one per token lifetime and at most 1.25", mints, perHour)
	}
	if s.sink.writes != mints*100 {
		t.Errorf("%d namespace writes for %d mints: every mint must reach all 100 namespaces once", s.sink.writes, mints)
	}
	if evs := s.events(); len(evs) != 0 {
		t.Errorf("a healthy day raised events: %+v", evs)
	}

	// A restart with a valid stored credential mints nothing.
	s.clock.Step(5 * time.Minute)
	s.sink.published = map[string]broker.Credential{}
	s.start()
	s.r.Step(context.Background())
	if got := s.gh.Calls(emulator.RouteMintToken); got != mints {
		t.Errorf("the restart minted %d tokens", got-mints)
	}
	if len(s.sink.published) != 10 {
		t.Errorf("after the restart %d of 10 tenants are published", len(s.sink.published))
	}
}

func TestAnOutageShorterThanTheLeadNeverLeavesAnExpiredToken(t *testing.T) {
	s := newSim(t)
	s.addAppTenants(2)
	s.r.Step(context.Background())
	due := s.r.Status("app-00").NextRefresh
	s.gh.FailUntil(due.Add(4*time.Minute), http.StatusBadGateway)
	s.run(2*time.Hour, false)
	evs := s.events()
	if count(evs, broker.EventCredentialExpiring) != 0 {
		t.Errorf("a 4-minute outage raised CREDENTIAL_EXPIRING: %+v", evs)
	}
	if count(evs, broker.EventCredentialRefreshFailed) != 2 || count(evs, broker.EventRecovered) != 2 {
		t.Errorf("want one REFRESH_FAILED and one RECOVERED per tenant, got %+v", evs)
	}
}

// GitHub rate-limits the renewal with a burst of 429s (no Retry-After):
// the Refresher waits the advised minute between tries, keeps the last
// good token published, and renews within the lead.
func TestA429BurstWithinTheLeadNeverLeavesAnExpiredToken(t *testing.T) {
	s := newSim(t)
	s.addAppTenants(2)
	s.r.Step(context.Background())
	due := s.r.Status("app-00").NextRefresh
	s.run(due.Sub(s.clock.Now())-time.Second, false)
	s.gh.FailNext(http.StatusTooManyRequests, http.StatusTooManyRequests, http.StatusTooManyRequests, http.StatusTooManyRequests)
	s.run(2*time.Hour, false) // fails the test if an expired token is ever left published
	evs := s.events()
	if count(evs, broker.EventCredentialExpiring) != 0 {
		t.Errorf("a burst of four 429s raised CREDENTIAL_EXPIRING: %+v", evs)
	}
	if count(evs, broker.EventCredentialRefreshFailed) == 0 || count(evs, broker.EventRecovered) != count(evs, broker.EventCredentialRefreshFailed) {
		t.Errorf("events %+v: want the limited renewal told (RATE_LIMITED) and recovered", evs)
	}
	if st := s.r.Status("app-00"); st.State != broker.CredentialReady {
		t.Errorf("after the burst: %+v", st)
	}
}

func TestALongerOutageWarnsBeforeExpiry(t *testing.T) {
	s := newSim(t)
	s.addAppTenants(1)
	s.r.Step(context.Background())
	expiry := s.r.Status("app-00").ExpiresAt
	due := s.r.Status("app-00").NextRefresh
	s.gh.FailUntil(due.Add(40*time.Minute), http.StatusBadGateway)
	s.run(due.Sub(s.clock.Now())+45*time.Minute, true)
	var expiring []broker.Event
	for _, ev := range s.events() {
		if ev.Type == broker.EventCredentialExpiring {
			expiring = append(expiring, ev)
		}
	}
	if len(expiring) != 1 || !expiring[0].Time.Before(expiry) || expiring[0].Severity != broker.SeverityCritical {
		t.Fatalf("CREDENTIAL_EXPIRING events %+v, want one, critical, before %v", expiring, expiry)
	}
	t.Logf("CREDENTIAL_EXPIRING raised %v before expiry", expiry.Sub(expiring[0].Time))
	if st := s.r.Status("app-00"); st.State != broker.CredentialReady {
		t.Errorf("after GitHub came back: %s", st.State)
	}
}

func TestARevokedPATIsAnnouncedOnce(t *testing.T) {
	s := newSim(t)
	_, _, err := s.registry.Create(context.Background(), broker.Tenant{ID: "pat",
		Owner: broker.Owner{Login: s.demo.Org.Login, ID: s.demo.Org.ID, Type: broker.OwnerOrganization},
		PAT:   &broker.PAT{Token: s.demo.PAT}})
	if err != nil {
		t.Fatal(err)
	}
	s.r.Step(context.Background())
	before := s.gh.Calls(emulator.RouteUser)
	s.gh.Revoke(s.demo.PAT)
	s.run(13*time.Hour, true)
	evs := s.events()
	validations := s.gh.Calls(emulator.RouteUser) - before
	t.Logf("revoked PAT over 13 h: %d validations, %d events", validations, len(evs))
	if count(evs, broker.EventCredentialRevoked) != 1 || len(evs) != 1 {
		t.Errorf("events %+v, want exactly one CREDENTIAL_REVOKED", evs)
	}
	// Backoff 1m → 1h with equal jitter: at least hourly, never in a loop.
	if validations < 13 || validations > 32 {
		t.Errorf("%d validations in 13 h, want 13–32", validations)
	}
	if st := s.r.Status("pat"); st.State != broker.CredentialFailed || st.LastError.Reason != broker.ReasonTokenRevoked {
		t.Errorf("status %+v", st)
	}
	if s.sink.reports != 1 {
		t.Errorf("%d Kubernetes reports, want 1", s.sink.reports)
	}
}

// A token that a renewal superseded, or whose last tenant left, stops
// working at GitHub once the grace has passed, and not before: whoever
// copied it out of a Secret cannot keep pulling with it for the rest of
// its hour.
func TestSupersededAndOrphanedTokensAreRevoked(t *testing.T) {
	ctx := context.Background()
	s := newSim(t)
	s.gh.AcceptAppTokens(true) // so that the registry tells a live token from a revoked one
	s.addAppTenants(1)
	prober := github.NewPullProber(github.PullProberConfig{Clock: s.clock})
	pulls := func(cred broker.Credential) bool { return prober.Probe(ctx, cred, s.demo.Image) == nil }
	published := func() broker.Credential {
		s.sink.mu.Lock()
		defer s.sink.mu.Unlock()
		return s.sink.published["app-00"]
	}

	s.run(time.Minute, false)
	first := published()
	s.run(51*time.Minute, false) // past the renewal at 49 to 50 minutes, inside its grace
	second := published()
	if second.Token == first.Token {
		t.Fatal("no renewal in 52 minutes")
	}
	if !pulls(first) || s.gh.Calls(emulator.RouteRevokeToken) != 0 {
		t.Fatal("the superseded token was revoked before its grace")
	}
	s.run(refresh.DefaultRevokeGrace, false)
	if pulls(first) || !pulls(second) {
		t.Errorf("after the grace: the superseded token pulls %v (want false), the current one %v (want true)", pulls(first), pulls(second))
	}

	if err := s.registry.Delete(ctx, "app-00", ""); err != nil {
		t.Fatal(err)
	}
	s.r.Changed("app-00")
	s.run(refresh.DefaultRevokeGrace+time.Second, true)
	if pulls(second) {
		t.Error("the token of a deleted tenant still pulls")
	}
	if n := s.gh.Calls(emulator.RouteRevokeToken); n != 2 {
		t.Errorf("%d revocations, want 2", n)
	}
}
