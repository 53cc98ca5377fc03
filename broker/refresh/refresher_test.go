package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/inbox"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"
	"github.com/credbroker/credbroker/broker/internal/kit"
	"github.com/credbroker/credbroker/broker/notify"

	"github.com/credbroker/credbroker/internal/testenv"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestDueTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name   string
		jitter float64
		cred   broker.Credential
		want   time.Time
	}{
		{"1h App token: 10m before expiry", 0, broker.Credential{Kind: broker.KindGitHubApp, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, now.Add(50 * time.Minute)},
		{"1h App token, half the jitter: a twentieth of the lead earlier", 0.5, broker.Credential{Kind: broker.KindGitHubApp, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
			now.Add(49*time.Minute + 30*time.Second)},
		{"30m token: a sixth of its life", 0, broker.Credential{Kind: broker.KindGitHubApp, IssuedAt: now, ExpiresAt: now.Add(30 * time.Minute)}, now.Add(25 * time.Minute)},
		{"App token already inside the lead: at once", 0, broker.Credential{Kind: broker.KindGitHubApp, ExpiresAt: now.Add(time.Minute)}, now.Add(time.Second)},
		{"PAT without expiry: recheck in 6h", 0, broker.Credential{Kind: broker.KindPAT, IssuedAt: now}, now.Add(6 * time.Hour)},
		{"PAT expiring in a year: recheck in 6h", 0, broker.Credential{Kind: broker.KindPAT, ExpiresAt: now.Add(365 * day)}, now.Add(6 * time.Hour)},
		{"PAT expiring in 7d3h: at the 7-day warning", 0, broker.Credential{Kind: broker.KindPAT, ExpiresAt: now.Add(7*day + 3*time.Hour)}, now.Add(3 * time.Hour)},
		{"PAT expiring in 3h: at the 1-hour warning", 0, broker.Credential{Kind: broker.KindPAT, ExpiresAt: now.Add(3 * time.Hour)}, now.Add(2 * time.Hour)},
		{"PAT expiring in 30m: at its expiry", 0, broker.Credential{Kind: broker.KindPAT, ExpiresAt: now.Add(30 * time.Minute)}, now.Add(30 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm := timing{lead: DefaultLead, patRecheck: DefaultPATRecheck, patWarnings: broker.DefaultPATWarnings(), jitter: func() float64 { return tc.jitter }}
			if got := tm.due(tc.cred, now); !got.Equal(tc.want) {
				t.Errorf("due %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name           string
		n              int
		floor, ceiling time.Duration
		jitter         float64
		want           time.Duration
	}{
		{"first retry, least jitter: half the floor", 0, 5 * time.Second, 5 * time.Minute, 0, 2500 * time.Millisecond},
		{"first retry, most jitter: the floor", 0, 5 * time.Second, 5 * time.Minute, 1, 5 * time.Second},
		{"doubles", 3, 5 * time.Second, 5 * time.Minute, 1, 40 * time.Second},
		{"stops at the ceiling", 10, 5 * time.Second, 5 * time.Minute, 1, 5 * time.Minute},
		{"no overflow on a long outage", 200, time.Minute, time.Hour, 0, 30 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kit.Backoff(tc.n, tc.floor, tc.ceiling, func() float64 { return tc.jitter }); got != tc.want {
				t.Errorf("backoff = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tm := timing{lead: DefaultLead, patRecheck: DefaultPATRecheck, patWarnings: broker.DefaultPATWarnings(), jitter: func() float64 { return 1 }}
	valid := broker.Credential{Token: "t", ExpiresAt: now.Add(4 * time.Minute)}
	tests := []struct {
		name     string
		failures int
		cred     broker.Credential
		err      error
		want     time.Duration
	}{
		{"transient, first failure", 1, broker.Credential{}, &broker.ReasonError{Cause: broker.ReasonGitHubUnavailable}, 5 * time.Second},
		{"transient, many failures: capped at half the last good token's life", 9, valid, &broker.ReasonError{Cause: broker.ReasonGitHubUnavailable}, 2 * time.Minute},
		{"only a person can fix it: a minute", 1, broker.Credential{}, &broker.ReasonError{Cause: broker.ReasonTokenRevoked}, time.Minute},
		{"rate limited: not before GitHub's reset", 1, valid, brokertest.RateLimited(10 * time.Minute), 10 * time.Minute},
		{"never busy-loops", 1, broker.Credential{Token: "t", ExpiresAt: now.Add(time.Second)}, &broker.ReasonError{Cause: broker.ReasonGitHubUnavailable}, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tm.retryWait(tc.cred, tc.failures, tc.err, now); got != tc.want {
				t.Errorf("wait %v, want %v", got, tc.want)
			}
		})
	}
}

// simulated is a Refresher on a fake clock with in-memory stores.
type simulated struct {
	clock  *clocktesting.FakeClock
	reg    *broker.Tenants
	store  broker.Store
	src    *brokertest.FakeSource
	sink   *brokertest.RecordingSink
	events *brokertest.MemEvents
	prober *brokertest.FakeProber
	r      *Refresher
}

func newSimulated(t *testing.T, tenants ...broker.Tenant) *simulated {
	t.Helper()
	s := &simulated{clock: clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)),
		sink: &brokertest.RecordingSink{}, events: brokertest.NewMemEvents(), prober: &brokertest.FakeProber{}}
	s.src = &brokertest.FakeSource{Now: s.clock.Now}
	s.reg, s.store = brokertest.NewTestRegistry(t)
	for _, tn := range tenants {
		if _, _, err := s.reg.Create(context.Background(), tn); err != nil {
			t.Fatal(err)
		}
	}
	s.r = s.newRefresher()
	return s
}

func (s *simulated) newRefresher() *Refresher {
	log := slog.New(slog.DiscardHandler)
	return New(Config{Clock: s.clock, Resync: time.Hour, Jitter: func() float64 { return 0.5 },
		Notifier: notify.NewNotifier(s.events, false, s.clock, nil, log), Prober: s.prober},
		s.reg, s.src, s.sink, log)
}

// step runs what is due now, and waits for the probes it started.
func (s *simulated) step(ctx context.Context) time.Time {
	next := s.r.Step(ctx)
	s.r.probing.Wait()
	return next
}

// advance moves the clock to the Refresher's next wake-up, at most until
// end, and runs what is due.
func (s *simulated) advance(ctx context.Context, end time.Time) {
	next := s.step(ctx)
	if next.After(end) {
		next = end
	}
	s.clock.SetTime(next)
	s.step(ctx)
}

func TestRefresherPublishesEveryTenantThenFollowsChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, _ := brokertest.NewTestRegistry(t)
	for _, id := range []string{"a", "b"} {
		if _, _, err := reg.Create(ctx, brokertest.AppTenantFor(id)); err != nil {
			t.Fatal(err)
		}
	}
	src, sink := &brokertest.FakeSource{}, &brokertest.RecordingSink{}
	log := slog.New(slog.DiscardHandler)
	r := New(Config{Resync: time.Hour, Notifier: notify.NewNotifier(brokertest.NewMemEvents(), false, clock.RealClock{}, nil, log)}, reg, src, sink, log)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	testenv.Eventually(t, 5*time.Second, testenv.Holds("the first publication", func() bool { calls, _ := sink.Snapshot(); return len(calls) >= 3 }))
	calls, _ := sink.Snapshot()
	if !slices.Equal(calls[:3], []string{"publish a", "publish b", "all"}) {
		t.Fatalf("calls %v: every tenant must be published before PublishedAll", calls)
	}

	// A change that needs a new credential, while the source fails, keeps
	// what was published and says why.
	_, before := sink.Snapshot()
	src.Fail(&broker.ReasonError{Cause: broker.ReasonInstallationSuspended, Msg: "suspended"})
	if _, err := reg.Update(ctx, "a", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.App.Permissions = map[string]string{"packages": "read", "metadata": "read"}
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	// Tenants tells the running refresher itself.
	if err := reg.Delete(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, testenv.Holds("the removal of b", func() bool { calls, _ := sink.Snapshot(); return slices.Contains(calls, "remove b") }))
	testenv.Eventually(t, 5*time.Second, testenv.Holds("the report", func() bool {
		calls, _ := sink.Snapshot()
		return slices.Contains(calls, "report a INSTALLATION_SUSPENDED")
	}))
	calls, after := sink.Snapshot()
	if slices.Contains(calls[3:], "publish a") || after["a"].Token != before["a"].Token {
		t.Errorf("a failed refresh replaced the published credential: %v", calls)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestStatusFollowsTheCredential(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t, brokertest.AppTenantFor("s"))
	tn, _ := s.reg.Get(ctx, "s")

	if st := s.r.Status("s"); st.State != broker.CredentialPending || st.Fingerprint != "" {
		t.Errorf("before any refresh: %+v", st)
	}
	s.step(ctx)
	ready := s.r.Status("s")
	if ready.State != broker.CredentialReady || ready.Kind != broker.KindGitHubApp || ready.Fingerprint == "" || ready.LastError != nil {
		t.Fatalf("after a mint: %+v", ready)
	}
	s.src.Fail(&broker.ReasonError{Cause: broker.ReasonGitHubUnavailable, Msg: "GitHub is down"})
	s.r.RenewNow(ctx, tn)
	degraded := s.r.Status("s")
	if degraded.State != broker.CredentialDegraded || degraded.Fingerprint != ready.Fingerprint ||
		degraded.LastError == nil || degraded.LastError.Reason != broker.ReasonGitHubUnavailable {
		t.Errorf("after a failed refresh: %+v", degraded)
	}
	if cred, registries, ok := s.r.Current("s"); !ok || cred.Fingerprint() != ready.Fingerprint || len(registries) != 1 {
		t.Errorf("current credential after a failure: %v %v %v", cred, registries, ok)
	}
	s.src.Fail(&broker.ReasonError{Cause: broker.ReasonInstallationSuspended, Msg: "suspended"})
	s.r.RenewNow(ctx, tn)
	if st := s.r.Status("s"); st.State != broker.CredentialFailed {
		t.Errorf("after a failure only a person can fix: %s", st.State)
	}
	s.src.Fail(&broker.ReasonError{Cause: broker.ReasonGitHubUnavailable, Msg: "GitHub is down"})
	s.r.RenewNow(ctx, tn)
	s.clock.Step(2 * time.Hour) // past the last good credential's expiry
	if st := s.r.Status("s"); st.State != broker.CredentialFailed {
		t.Errorf("with the credential expired: %s", st.State)
	}
}

func TestTenantsSharingASourceShareOneMint(t *testing.T) {
	ctx := context.Background()
	other := brokertest.AppTenantFor("d")
	other.App.Permissions = map[string]string{"packages": "read", "metadata": "read"}
	s := newSimulated(t, brokertest.AppTenantFor("a"), brokertest.AppTenantFor("b"), brokertest.AppTenantFor("c"), other)
	s.step(ctx)
	_, published := s.sink.Snapshot()
	if s.src.Minted() != 2 {
		t.Errorf("%d mints for two distinct sources, want 2", s.src.Minted())
	}
	if len(published) != 4 || published["a"].Token != published["b"].Token || published["b"].Token != published["c"].Token ||
		published["a"].Token == published["d"].Token {
		t.Errorf("published %v: a, b and c must share one credential, d its own", published)
	}

	// A tenant change that keeps the source reuses the credential.
	if _, err := s.reg.Update(ctx, "b", "", func(t broker.Tenant) (broker.Tenant, error) { t.Namespaces = []string{"b2"}; return t, nil }); err != nil {
		t.Fatal(err)
	}
	s.r.Changed("b")
	s.step(ctx)
	if s.src.Minted() != 2 {
		t.Errorf("a namespaces change minted (%d mints)", s.src.Minted())
	}

	// When the shared credential is due, one mint renews it for all three.
	s.clock.Step(51 * time.Minute)
	s.step(ctx)
	_, renewed := s.sink.Snapshot()
	if s.src.Minted() != 4 { // the a/b/c key and d's key were both due
		t.Errorf("%d mints after the renewal, want 4", s.src.Minted())
	}
	if renewed["a"].Token == published["a"].Token || renewed["a"].Token != renewed["b"].Token || renewed["b"].Token != renewed["c"].Token {
		t.Errorf("renewal did not reach every tenant of the key: %v", renewed)
	}

	// A tenant that moves to another source leaves the shared credential.
	if _, err := s.reg.Update(ctx, "c", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.App.Permissions = map[string]string{"packages": "read", "metadata": "read"}
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	s.r.Changed("c")
	s.step(ctx)
	_, moved := s.sink.Snapshot()
	if moved["c"].Token != moved["d"].Token || s.src.Minted() != 4 {
		t.Errorf("c should now share d's credential without a mint: %v, %d mints", moved, s.src.Minted())
	}
}

func TestABurstOfChangesIsNotDropped(t *testing.T) {
	ctx := context.Background()
	var tenants []broker.Tenant
	for i := range 300 {
		tenants = append(tenants, brokertest.AppTenantFor(fmt.Sprintf("t%03d", i)))
	}
	s := newSimulated(t)
	s.step(ctx) // the first resync, with no tenants yet
	for _, tn := range tenants {
		if _, _, err := s.reg.Create(ctx, tn); err != nil {
			t.Fatal(err)
		}
		s.r.Changed(tn.ID) // no Step between: the burst piles up
	}
	s.step(ctx)
	if _, published := s.sink.Snapshot(); len(published) != len(tenants) {
		t.Errorf("%d of %d tenants published before the next resync", len(published), len(tenants))
	}
}

// A tenant stored with a probe image of another owner (written before the
// rule, or straight into the store) gets no probe at all: the credential
// goes to no registry the tenant chose, and nothing is published.
func TestAProbeImageOutsideTheTenantsRulesIsNeverSentTheCredential(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t)
	hostile := brokertest.AppTenantFor("hostile").WithDefaults()
	hostile.ProbeImage = "attacker.example:5000/acme/base:1"
	if _, err := s.store.CreateTenant(ctx, hostile); err != nil {
		t.Fatal(err)
	}
	s.r.Changed("hostile")
	s.step(ctx)
	if probes := s.prober.Set(nil); probes != 0 {
		t.Errorf("%d probes sent the credential to %s", probes, hostile.ProbeImage)
	}
	if _, published := s.sink.Snapshot(); published["hostile"].Token != "" {
		t.Error("a credential was published without its probe")
	}
	if st := s.r.Status("hostile"); st.Probe == nil || st.Probe.Pulls || !strings.Contains(st.Probe.Error.Message, "not the tenant's to pull") {
		t.Errorf("status %+v, want the refused probe named", st.Probe)
	}
}

func TestProbeGatesTheFirstPublicationAndKindChanges(t *testing.T) {
	ctx := context.Background()
	probed := brokertest.AppTenantFor("probed")
	probed.ProbeImage = "ghcr.io/acme/base:1"
	s := newSimulated(t, probed, brokertest.AppTenantFor("plain"))
	s.prober.Set(&broker.ReasonError{Cause: broker.ReasonAppTokenNotAccepted, Msg: "denied"})

	s.step(ctx)
	_, published := s.sink.Snapshot()
	if _, ok := published["probed"]; ok || published["plain"].Token == "" {
		t.Fatalf("published %v: the tenant whose probe failed must get nothing, the other its credential", published)
	}
	st := s.r.Status("probed")
	if st.State != broker.CredentialFailed || st.LastError == nil || st.LastError.Reason != broker.ReasonAppTokenNotAccepted ||
		st.Probe == nil || st.Probe.Pulls || st.Probe.Image != probed.ProbeImage || st.Probe.Error.Reason != broker.ReasonAppTokenNotAccepted {
		t.Errorf("status after a failed probe: %+v", st)
	}
	// The failed probe is retried after ProbeRetry, without a new mint.
	s.clock.Step(DefaultProbeRetry - time.Second)
	s.step(ctx)
	if probes := s.prober.Set(nil); probes != 1 {
		t.Errorf("%d probes before the retry is due, want 1", probes)
	}
	s.clock.Step(time.Second)
	s.step(ctx)
	if _, published = s.sink.Snapshot(); published["probed"].Token != published["plain"].Token || s.src.Minted() != 1 {
		t.Errorf("after the retry passed: %v, %d mints", published, s.src.Minted())
	}
	if got := s.events.Types(); !slices.Equal(got, []string{"PROBE_FAILED probed", "RECOVERED probed"}) {
		t.Errorf("events %v", got)
	}
	if st := s.r.Status("probed"); st.State != broker.CredentialReady || st.Probe == nil || !st.Probe.Pulls || st.Probe.Error != nil {
		t.Errorf("status after the probe passed: %+v", st)
	}

	// A renewal of the same kind and owner is not probed again...
	s.clock.Step(time.Hour)
	s.step(ctx)
	if probes := s.prober.Set(nil); probes != 2 || s.src.Minted() != 2 {
		t.Errorf("a renewal probed (%d probes, %d mints)", probes, s.src.Minted())
	}
	// ...but a refresh asked for is.
	tn, _ := s.reg.Get(ctx, "probed")
	s.r.RenewNow(ctx, tn)
	if probes := s.prober.Set(nil); probes != 3 {
		t.Errorf("RefreshCredential did not probe (%d probes)", probes)
	}
}

func TestARestartPublishesTheStoredCredentialWithoutMinting(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t, brokertest.AppTenantFor("a"), brokertest.AppTenantFor("b"))
	sealer, err := broker.NewSealer(make([]byte, broker.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	start := func() *Refresher {
		r := s.newRefresher()
		r.cfg.Credentials, r.cfg.Sealer = s.events, sealer
		return r
	}
	s.r = start()
	s.step(ctx)
	_, first := s.sink.Snapshot()
	if s.src.Minted() != 1 {
		t.Fatalf("%d mints, want 1", s.src.Minted())
	}
	for key, sealed := range s.events.Creds {
		if strings.Contains(string(sealed), first["a"].Token) {
			t.Errorf("credential %s stored in the clear", key)
		}
	}

	s.clock.Step(20 * time.Minute)
	s.r = start() // the restart
	s.step(ctx)
	_, again := s.sink.Snapshot()
	if s.src.Minted() != 1 || again["a"].Token != first["a"].Token || again["b"].Token != first["a"].Token {
		t.Errorf("after a restart: %d mints, published %v", s.src.Minted(), again)
	}
	if st := s.r.Status("a"); !st.NextRefresh.Equal(first["a"].ExpiresAt.Add(-DefaultLead - DefaultLead/20)) {
		t.Errorf("restored credential renews at %v, want 10.5m before %v", st.NextRefresh, first["a"].ExpiresAt)
	}

	// A stored credential that does not open (another key, or tampered
	// with) is replaced by a new one, not published.
	for key := range s.events.Creds {
		s.events.Creds[key][len(s.events.Creds[key])-1] ^= 1
	}
	s.r = start()
	s.step(ctx)
	if _, after := s.sink.Snapshot(); s.src.Minted() != 2 || after["a"].Token == first["a"].Token {
		t.Errorf("a tampered stored credential: %d mints, published %v", s.src.Minted(), after)
	}

	// Past its renewal time a stored credential is renewed, not reused.
	s.clock.Step(55 * time.Minute)
	s.r = start()
	s.step(ctx)
	if s.src.Minted() != 3 {
		t.Errorf("a stored credential due for renewal was reused (%d mints)", s.src.Minted())
	}
}

func TestFailuresNotifyOnceAndRecover(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t, brokertest.AppTenantFor("a"))
	s.step(ctx)
	start := s.clock.Now()
	// One transient failure is retried within seconds and is not news.
	s.src.Fail(&broker.ReasonError{Cause: broker.ReasonGitHubUnavailable, Msg: "502"})
	s.clock.SetTime(s.r.Status("a").NextRefresh)
	s.step(ctx)
	if got := s.events.Types(); len(got) != 0 || s.r.Status("a").LastError == nil {
		t.Errorf("the first failure notified: %v", got)
	}
	// The second is, once, however often it fails after that; with less
	// than half the lead left, the expiry is announced too.
	end := start.Add(57 * time.Minute)
	for s.clock.Now().Before(end) {
		s.advance(ctx, end)
	}
	s.src.Fail(nil)
	end = end.Add(2 * time.Minute)
	for s.clock.Now().Before(end) {
		s.advance(ctx, end)
	}
	want := []string{"CREDENTIAL_REFRESH_FAILED a", "CREDENTIAL_EXPIRING a", "RECOVERED a", "RECOVERED a"}
	if got := s.events.Types(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	calls, _ := s.sink.Snapshot()
	if n := len(slices.DeleteFunc(calls, func(c string) bool { return !strings.HasPrefix(c, "report a") })); n != 2 {
		t.Errorf("%d Kubernetes reports, want one per condition (2)", n)
	}
}

func TestInstallationWebhookStopsAndResumesRefreshes(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t, brokertest.AppTenantFor("a"), brokertest.AppTenantFor("b"))
	s.step(ctx)
	s.r.InstallationChanged(ctx, 1, broker.InstallationSuspended)
	st := s.r.Status("a")
	if st.State != broker.CredentialFailed || st.LastError.Reason != broker.ReasonInstallationSuspended || st.NextRefresh.Sub(s.clock.Now()) < 30*time.Second {
		t.Errorf("after suspension: %+v", st)
	}
	s.r.InstallationChanged(ctx, 2, broker.InstallationUnsuspended) // another installation: nothing happens
	if s.src.Minted() != 1 {
		t.Errorf("%d mints", s.src.Minted())
	}
	s.r.InstallationChanged(ctx, 1, broker.InstallationUnsuspended)
	if st := s.r.Status("a"); st.State != broker.CredentialReady || s.src.Minted() != 2 {
		t.Errorf("after unsuspension: %+v, %d mints", st, s.src.Minted())
	}
	s.r.InstallationChanged(ctx, 1, broker.InstallationDeleted)
	if st := s.r.Status("b"); st.State != broker.CredentialFailed || st.LastError.Reason != broker.ReasonInstallationNotFound {
		t.Errorf("after deletion: %+v", st)
	}
	want := []string{"INSTALLATION_SUSPENDED a", "INSTALLATION_SUSPENDED b", "RECOVERED a", "RECOVERED b",
		"INSTALLATION_DELETED a", "INSTALLATION_DELETED b"}
	if got := s.events.Types(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestPATExpiryWarnsOncePerThreshold(t *testing.T) {
	ctx := context.Background()
	sealer, err := broker.NewSealer(make([]byte, broker.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s := newSimulated(t)
	s.reg = broker.NewTenants(brokertest.NewMemStore(), sealer, brokertest.PATGitHub{}, s.clock, broker.TenantsConfig{})
	s.r = s.newRefresher()
	tn := broker.Tenant{ID: "p", Owner: broker.Owner{Login: "bot", ID: 7, Type: broker.OwnerUser}, PAT: &broker.PAT{Token: "ghp_first"}}
	if _, _, err := s.reg.Create(ctx, tn); err != nil {
		t.Fatal(err)
	}
	expiry := s.clock.Now().Add(8 * 24 * time.Hour)
	s.src.Pat = broker.PATOwner{Owner: tn.Owner, Scopes: []string{"read:packages"}, ExpiresAt: expiry}
	end := expiry.Add(-30 * time.Minute)
	validations := 0
	for s.clock.Now().Before(end) {
		s.advance(ctx, end)
		validations++
	}
	want := []string{"CREDENTIAL_EXPIRING p", "CREDENTIAL_EXPIRING p", "CREDENTIAL_EXPIRING p"}
	if got := s.events.Types(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want one per threshold: %v", got, want)
	}
	var severities []broker.Severity
	for _, ev := range s.events.Events {
		severities = append(severities, ev.Severity)
	}
	if !slices.Equal(severities, []broker.Severity{broker.SeverityWarning, broker.SeverityWarning, broker.SeverityCritical}) {
		t.Errorf("severities %v: only the last warning is critical", severities)
	}
	// A new PAT that expires much later clears the warnings.
	s.src.Pat.ExpiresAt = s.clock.Now().Add(90 * 24 * time.Hour)
	if _, err := s.reg.Update(ctx, "p", "", func(t broker.Tenant) (broker.Tenant, error) { t.PAT = &broker.PAT{Token: "ghp_second"}; return t, nil }); err != nil {
		t.Fatal(err)
	}
	s.r.Changed("p")
	s.step(ctx)
	if got := s.events.Types(); len(got) != 6 || got[3] != "RECOVERED p" || got[5] != "RECOVERED p" {
		t.Errorf("events after a new PAT: %v", got)
	}
}

// A renewal belongs to the key, not to whoever asked for it: the caller
// (a RefreshCredential client) goes away mid-mint, and the renewal still
// lands for every tenant of the key, with no error.
func TestACallerLeavingCancelsNobodysRenewal(t *testing.T) {
	ctx := context.Background()
	s := newSimulated(t, brokertest.AppTenantFor("web"))
	s.step(ctx)
	tn, err := s.reg.Get(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	first := s.r.Status("web").Fingerprint
	s.src.Mu.Lock()
	s.src.Gate, s.src.Entered = make(chan struct{}), make(chan struct{}, 1)
	s.src.Mu.Unlock()

	caller, leave := context.WithCancel(ctx)
	callerDone := make(chan broker.CredentialStatus)
	go func() { callerDone <- s.r.RenewNow(caller, tn) }()
	<-s.src.Entered // the renewal is at GitHub
	leave()
	select {
	case <-callerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("RenewNow did not return when its caller left")
	}
	close(s.src.Gate)
	deadline := time.Now().Add(10 * time.Second)
	for st := s.r.Status("web"); st.Fingerprint == first || st.LastError != nil; st = s.r.Status("web") {
		if st.LastError != nil || time.Now().After(deadline) {
			t.Fatalf("status after the caller left: %+v, want the renewal to land", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.src.Minted(); got != 2 {
		t.Errorf("%d mints, want 2 (the first publication and the renewal)", got)
	}
}

// Probes run apart from renewals, each within ProbeTimeout: a tenant whose
// registry hangs waits for its own probe, and the others are proved and
// published meanwhile.
func TestAHangingRegistryDelaysOnlyItsTenant(t *testing.T) {
	ctx := context.Background()
	slow, fast := brokertest.AppTenantFor("slow"), brokertest.AppTenantFor("fast")
	slow.ProbeImage, fast.ProbeImage = "hung.example/acme/app:1", "ghcr.io/acme/app:1"
	slow.Registries = []string{"hung.example"}
	slow.App.Permissions = map[string]string{"packages": "read", "metadata": "read"} // a key of its own
	s := newSimulated(t, slow, fast)
	s.prober.Hangs = slow.ProbeImage
	const probeTimeout = 300 * time.Millisecond
	s.r = New(Config{Clock: s.clock, Resync: time.Hour, Jitter: func() float64 { return 0.5 },
		Notifier: notify.NewNotifier(s.events, false, s.clock, nil, slog.New(slog.DiscardHandler)), Prober: s.prober, ProbeTimeout: probeTimeout},
		s.reg, s.src, s.sink, slog.New(slog.DiscardHandler))

	start := time.Now()
	s.r.Step(ctx)
	s.r.waitProbes(ctx, "fast")
	if took := time.Since(start); took >= probeTimeout {
		t.Errorf("the pass and the healthy tenant's probe took %v, as long as the hung probe's deadline", took)
	}
	if _, published := s.sink.Snapshot(); published["fast"].Token == "" || published["slow"].Token != "" {
		t.Fatalf("published %v: want fast's credential and nothing yet for slow", published)
	}
	s.r.probing.Wait()
	st := s.r.Status("slow")
	if st.Probe == nil || st.Probe.Pulls || !strings.Contains(st.Probe.Error.Message, "deadline exceeded") {
		t.Errorf("slow's probe: %+v, want it failed at its deadline", st.Probe)
	}
	if got := s.events.Types(); !slices.Equal(got, []string{"PROBE_FAILED slow"}) {
		t.Errorf("events %v", got)
	}
}

// GitHub's deliveries are acknowledged when stored and acted on by the
// leader from the inbox, once each: a replayed suspend is not acted on
// again, and a rename moves the tenant's owner to the account's new login.
func TestDeliveriesAreActedOnOnceFromTheInbox(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSimulated(t, brokertest.AppTenantFor("web"))
	s.step(ctx)
	// GitHub's API confirms what the deliveries say.
	gh := &installationGitHub{inst: broker.Installation{ID: 1, Suspended: true, Account: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		Permissions: map[string]string{"packages": "read", "metadata": "read"}}}
	s.r.cfg.GitHub = gh
	mem := &brokertest.MemInbox{}
	ds := inbox.NewRunner(mem, s.clock, slog.New(slog.DiscardHandler))
	var acted atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- ds.Run(ctx, func(ctx context.Context, d broker.Delivery) { acted.Add(1); s.r.Act(ctx, d) })
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	suspend := broker.Delivery{ID: "d-1", InstallationID: 1, Change: broker.InstallationSuspended}
	for i, want := range []bool{true, false} {
		if added, err := ds.Accept(ctx, suspend); err != nil || added != want {
			t.Fatalf("accept %d: added=%v %v, want %v", i+1, added, err, want)
		}
	}
	waitFor("the suspend was not acted on", func() bool {
		st := s.r.Status("web")
		return st.LastError != nil && st.LastError.Reason == broker.ReasonInstallationSuspended
	})

	renamed := broker.Delivery{ID: "d-2", InstallationID: 1, Change: broker.AccountRenamed, Account: broker.Owner{Login: "acme-corp", ID: 1, Type: broker.OwnerOrganization}}
	gh.mu.Lock()
	gh.inst.Suspended, gh.inst.Account.Login = false, "acme-corp" // lifted, and the organization renamed
	gh.mu.Unlock()
	if _, err := ds.Accept(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	waitFor("the rename was not acted on", func() bool {
		tn, err := s.reg.Get(ctx, "web")
		return err == nil && tn.Owner.Login == "acme-corp"
	})
	if pending, _ := mem.PendingDeliveries(ctx, 10); len(pending) != 0 || acted.Load() != 2 {
		t.Errorf("%d acts, %d pending; want 2 acts (the replay is not one) and none pending", acted.Load(), len(pending))
	}
	if v := broker.ValidateImage(brokertest.MustGet(t, s.reg, "web"), "ghcr.io/acme-corp/app:1"); !v.Allowed {
		t.Errorf("after the rename the tenant may not run its images under the new login: %s", v.Message)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// bindingSink is a RecordingSink that records its Bind calls too.
type bindingSink struct{ brokertest.RecordingSink }

func (s *bindingSink) Bind(_ context.Context, t broker.Tenant) { s.Record("bind " + t.ID) }

// TestTenantsAreBoundBeforeTheirCredential: a Sink that can bind hears of a
// tenant before its credential, and even when no credential ever comes.
func TestTenantsAreBoundBeforeTheirCredential(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		failing error
		want    []string
	}{
		{"a credential comes", nil, []string{"bind a", "publish a"}},
		{"the source fails", &broker.ReasonError{Cause: broker.ReasonInstallationSuspended, Msg: "suspended"}, []string{"bind a", "report a INSTALLATION_SUSPENDED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSimulated(t, brokertest.AppTenantFor("a"))
			sink := &bindingSink{}
			s.r = New(Config{Clock: s.clock, Resync: time.Hour, Jitter: func() float64 { return 0.5 },
				Notifier: notify.NewNotifier(s.events, false, s.clock, nil, slog.New(slog.DiscardHandler))}, s.reg, s.src, sink, slog.New(slog.DiscardHandler))
			s.src.Fail(tc.failing)
			if err := s.r.syncAll(ctx); err != nil {
				t.Fatal(err)
			}
			if calls, _ := sink.Snapshot(); !slices.Equal(calls, tc.want) {
				t.Errorf("calls %v, want %v", calls, tc.want)
			}
		})
	}
}
