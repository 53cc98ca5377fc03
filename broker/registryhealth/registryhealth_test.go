package registryhealth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"
	"github.com/credbroker/credbroker/broker/notify"

	clocktesting "k8s.io/utils/clock/testing"
)

// fakeRegistries answers checks as a registry would: a login passes with
// the password it holds for the host, a probe needs the image too.
type fakeRegistries struct {
	mu        sync.Mutex
	passwords map[string]string // host → the password it takes
	images    map[string]bool
	asked     []string
}

func (f *fakeRegistries) answer(cred broker.Credential, host, what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, what)
	if want, ok := f.passwords[host]; !ok || want != cred.Token {
		return &broker.ReasonError{Cause: broker.ReasonTokenRevoked, Msg: "the registry rejected the login of " + cred.Username}
	}
	return nil
}

func (f *fakeRegistries) Login(_ context.Context, cred broker.Credential, host string) error {
	return f.answer(cred, host, "login "+host)
}

func (f *fakeRegistries) Probe(_ context.Context, cred broker.Credential, image string) error {
	host, _, _ := strings.Cut(image, "/")
	if err := f.answer(cred, host, "probe "+image); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[image] {
		return &broker.ReasonError{Cause: broker.ReasonImageNotFound, Msg: image + " does not exist"}
	}
	return nil
}

func (f *fakeRegistries) set(host, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords[host] = password
}

// healthRig is a Monitor on a fake clock with sealing Tenants.
type healthRig struct {
	clock      *clocktesting.FakeClock
	reg        *broker.Tenants
	store      broker.Store
	registries *fakeRegistries
	events     *brokertest.MemEvents
	sink       *brokertest.RecordingSink
	h          *Monitor
}

func newHealthRig(t *testing.T) *healthRig {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	sealer, err := broker.NewSealer(bytes.Repeat([]byte{7}, broker.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store := brokertest.NewMemStore()
	r := &healthRig{clock: clk, reg: broker.NewTenants(store, sealer, nil, clk, broker.TenantsConfig{}), store: store,
		registries: &fakeRegistries{passwords: map[string]string{}, images: map[string]bool{}},
		events:     brokertest.NewMemEvents(), sink: &brokertest.RecordingSink{}}
	log := slog.New(slog.DiscardHandler)
	r.h = NewMonitor(Config{Clock: clk, Interval: 5 * time.Minute,
		Notifier: notify.NewNotifier(r.events, false, clk, nil, log), Reporter: r.sink}, r.reg, r.registries, log)
	if _, _, err := r.reg.Create(context.Background(), brokertest.AppTenantFor("web")); err != nil {
		t.Fatal(err)
	}
	return r
}

// status is the tenant's one registry's status.
func (r *healthRig) status(t *testing.T, host string) broker.RegistryStatus {
	t.Helper()
	for _, st := range r.h.Status("web") {
		if st.Host == host {
			return st
		}
	}
	t.Fatalf("no status for %s in %+v", host, r.h.Status("web"))
	return broker.RegistryStatus{}
}

// registryEvents are the events about host, as "TYPE SEVERITY" strings.
func (r *healthRig) registryEvents(host string) []string {
	r.events.Mu.Lock()
	defer r.events.Mu.Unlock()
	var out []string
	for _, ev := range r.events.Events {
		if ev.Registry == host {
			out = append(out, fmt.Sprintf("%s %s", ev.Type, ev.Severity))
		}
	}
	return out
}

func TestRegistryHealthChecksEachCredentialAndReportsFailures(t *testing.T) {
	ctx := context.Background()
	r := newHealthRig(t)
	r.registries.set("quay.io", "s3cret")
	r.registries.images["quay.io/acme/base:1"] = true
	if _, err := r.reg.AddRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Username: "acme+robot", Password: "s3cret",
		Owners: []string{"acme"}, CheckImage: "quay.io/acme/base:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.AddRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "registry.example.com", Username: "ci", Password: "wrong"}); err != nil {
		t.Fatal(err)
	}
	r.registries.set("registry.example.com", "right")

	next := r.h.Step(ctx)
	if got := r.status(t, "quay.io"); got.State != broker.RegistryHealthy || got.Error != nil || !got.NextCheck.Equal(r.clock.Now().Add(5*time.Minute)) {
		t.Errorf("quay.io: %+v, want HEALTHY, next check in 5m", got)
	}
	failing := r.status(t, "registry.example.com")
	if failing.State != broker.RegistryFailing || failing.Error == nil || failing.Error.Reason != broker.ReasonTokenRevoked {
		t.Errorf("registry.example.com: %+v, want FAILING with TOKEN_REVOKED", failing)
	}
	if want := []string{"login registry.example.com", "probe quay.io/acme/base:1"}; !slices.Equal(slices.Sorted(slices.Values(r.registries.asked)), want) {
		t.Errorf("asked %v, want %v: a probe of the check image, else a login", r.registries.asked, want)
	}
	if got := r.registryEvents("registry.example.com"); !slices.Equal(got, []string{"REGISTRY_CHECK_FAILED WARNING"}) {
		t.Errorf("events about registry.example.com: %v", got)
	}
	if calls, _ := r.sink.Snapshot(); !slices.Contains(calls, "report web TOKEN_REVOKED") {
		t.Errorf("the failure was not reported to the tenant's namespaces: %v", calls)
	}
	if !next.Equal(r.clock.Now().Add(5 * time.Minute)) {
		t.Errorf("next wake %s, want the next check in 5m", next)
	}

	// Failing again raises nothing new; fixed, it recovers.
	r.clock.Step(5 * time.Minute)
	r.h.Step(ctx)
	if got := r.registryEvents("registry.example.com"); len(got) != 1 {
		t.Errorf("a failure that goes on was raised again: %v", got)
	}
	if _, err := r.reg.RotateRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "registry.example.com", Password: "right"}); err != nil {
		t.Fatal(err)
	}
	r.h.changes.Add("web")
	r.h.Step(ctx) // the rotation is checked at once
	if got := r.status(t, "registry.example.com"); got.State != broker.RegistryHealthy || got.Fingerprint != broker.Fingerprint("right") {
		t.Errorf("after the rotation: %+v, want HEALTHY with the new fingerprint", got)
	}
	if got := r.registryEvents("registry.example.com"); !slices.Equal(got, []string{"REGISTRY_CHECK_FAILED WARNING", "RECOVERED INFO"}) {
		t.Errorf("events after the rotation: %v", got)
	}

	// Removed, it is no longer checked or reported.
	if _, err := r.reg.RemoveRegistryCredential(ctx, "web", "", "quay.io"); err != nil {
		t.Fatal(err)
	}
	r.h.changes.Add("web")
	r.h.Step(ctx)
	if got := r.h.Status("web"); len(got) != 1 || got[0].Host != "registry.example.com" {
		t.Errorf("after removing quay.io: %+v", got)
	}
	for _, ev := range r.events.Events {
		if strings.Contains(ev.Message, "s3cret") || strings.Contains(ev.Message, "right") {
			t.Errorf("a password reached an event: %q", ev.Message)
		}
	}
}

func TestRegistryHealthWarnsBeforeAStaticCredentialExpires(t *testing.T) {
	ctx := context.Background()
	r := newHealthRig(t)
	r.registries.set("quay.io", "s3cret")
	expires := r.clock.Now().Add(8 * 24 * time.Hour)
	if _, err := r.reg.AddRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Username: "robot", Password: "s3cret", ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	// Run as Run would, waking when Step says, up to the expiry.
	for steps := 0; r.clock.Now().Before(expires); steps++ {
		next := r.h.Step(ctx)
		if !next.After(r.clock.Now()) || steps > 10000 {
			t.Fatalf("Step at %s wants to wake at %s", r.clock.Now(), next)
		}
		r.clock.SetTime(minTime(next, expires))
	}
	if got := r.registryEvents("quay.io"); !slices.Equal(got, []string{"CREDENTIAL_EXPIRING WARNING", "CREDENTIAL_EXPIRING WARNING", "CREDENTIAL_EXPIRING CRITICAL"}) {
		t.Errorf("events as the expiry neared: %v, want warnings at 7d and 1d, critical at 1h", got)
	}
	var at []time.Duration
	for _, ev := range r.events.Events {
		at = append(at, expires.Sub(ev.Time))
	}
	if want := []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour}; !slices.Equal(at, want) {
		t.Errorf("warned %v before the expiry, want %v: on the threshold, not at the next check", at, want)
	}
	if st := r.status(t, "quay.io"); st.State != broker.RegistryExpired {
		t.Errorf("at the expiry: %s, want EXPIRED", st.State)
	}

	// A rotation with a later expiry closes the warnings.
	if _, err := r.reg.RotateRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Password: "s3cret", ExpiresAt: expires.Add(90 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r.h.changes.Add("web")
	r.h.Step(ctx)
	if got := r.registryEvents("quay.io"); len(got) != 6 || got[5] != "RECOVERED INFO" {
		t.Errorf("after the rotation: %v, want the three warnings recovered", got)
	}
}

func TestRegistryHealthNamesACredentialThatDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	r := newHealthRig(t)
	if _, err := r.reg.AddRegistryCredential(ctx, "web", "", broker.RegistryCredential{Host: "quay.io", Username: "robot", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	other, _ := broker.NewSealer(bytes.Repeat([]byte{8}, broker.KeySize))
	// The key was changed under the stored credential.
	r.h.registry = broker.NewTenants(r.store, other, nil, r.clock, broker.TenantsConfig{})
	r.h.Step(ctx)
	if st := r.status(t, "quay.io"); st.State != broker.RegistryFailing || st.Error.Reason != broker.ReasonDecryptionFailed {
		t.Errorf("%+v, want FAILING with DECRYPTION_FAILED", st)
	}
	if len(r.registries.asked) != 0 {
		t.Errorf("the registry was asked without a password: %v", r.registries.asked)
	}
}
