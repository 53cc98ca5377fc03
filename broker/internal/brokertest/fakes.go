package brokertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"

	"k8s.io/utils/clock"
)

type rateLimitErr time.Duration

func (e rateLimitErr) Error() string { return "rate limited" }

func (e rateLimitErr) Reason() broker.Reason { return broker.ReasonRateLimited }

func (e rateLimitErr) RetryAfter() time.Duration { return time.Duration(e) }

func RateLimited(d time.Duration) error { return rateLimitErr(d) }

// FakeSource mints numbered 1-hour tokens dated by its clock, and fails
// while failing is set.
type FakeSource struct {
	Mu      sync.Mutex
	Now     func() time.Time
	mints   int
	failing error
	Pat     broker.PATOwner
	// Gate, when set, holds every mint until it is closed or the mint's
	// context ends; entered hears of each mint that waits there.
	Gate    chan struct{}
	Entered chan struct{}
}

func (f *FakeSource) MintInstallationToken(ctx context.Context, id int64, _ map[string]string, _ []string) (broker.Credential, error) {
	f.Mu.Lock()
	gate, entered := f.Gate, f.Entered
	f.Mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return broker.Credential{}, ctx.Err()
		}
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if f.failing != nil {
		return broker.Credential{}, f.failing
	}
	f.mints++
	now := f.clock()
	return broker.Credential{Kind: broker.KindGitHubApp, Username: broker.AppTokenUsername, Token: fmt.Sprintf("ghs_%d_%d", id, f.mints),
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, nil
}

func (f *FakeSource) ValidatePAT(context.Context, string) (broker.PATOwner, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if f.failing != nil {
		return broker.PATOwner{}, f.failing
	}
	return f.Pat, nil
}

func (f *FakeSource) clock() time.Time {
	if f.Now == nil {
		return time.Now()
	}
	return f.Now()
}

func (f *FakeSource) Fail(err error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.failing = err
}

func (f *FakeSource) Minted() int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.mints
}

// RecordingSink remembers what it was told, in order.
type RecordingSink struct {
	Mu     sync.Mutex
	calls  []string
	latest map[string]broker.Credential
}

func (s *RecordingSink) Record(call string) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.calls = append(s.calls, call)
}

// Bind does nothing: see a Refresher test's bindingSink for a Sink that
// records binds.
func (s *RecordingSink) Bind(context.Context, broker.Tenant) {}

func (s *RecordingSink) Publish(_ context.Context, t broker.Tenant, p broker.SecretPayload) error {
	s.Mu.Lock()
	if s.latest == nil {
		s.latest = map[string]broker.Credential{}
	}
	s.latest[t.ID] = p.Credential
	s.Mu.Unlock()
	s.Record("publish " + t.ID)
	return nil
}

func (s *RecordingSink) Remove(_ context.Context, id string) error {
	s.Record("remove " + id)
	return nil
}

func (s *RecordingSink) PublishedAll() { s.Record("all") }

func (s *RecordingSink) Report(id string, reason broker.Reason, _ string) {
	s.Record("report " + id + " " + string(reason))
}

// Namespaces holds none: a RecordingSink has no namespaces.
func (s *RecordingSink) Namespaces(string) []broker.NamespaceSync { return nil }

func (s *RecordingSink) Snapshot() ([]string, map[string]broker.Credential) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return slices.Clone(s.calls), maps.Clone(s.latest)
}

func NewTestRegistry(t *testing.T) (*broker.Tenants, broker.Store) {
	t.Helper()
	store := NewMemStore()
	// Tenants of these tests differ by permissions to get keys of their own.
	policy := broker.TenantsConfig{AppPermissions: map[string]string{"packages": "read", "metadata": "read"}}
	return broker.NewTenants(store, nil, nil, clock.RealClock{}, policy), store
}

func AppTenantFor(id string) broker.Tenant {
	return broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization}, App: &broker.GitHubApp{InstallationID: 1}}
}

type FakeProber struct {
	Mu     sync.Mutex
	probes int
	err    error
	Hangs  string // an image whose registry never answers
}

func (p *FakeProber) Probe(ctx context.Context, _ broker.Credential, image string) error {
	p.Mu.Lock()
	p.probes++
	err, hangs := p.err, p.Hangs
	p.Mu.Unlock()
	if image == hangs {
		<-ctx.Done()
		return fmt.Errorf("GET https://%s: %w", image, ctx.Err())
	}
	return err
}

func (p *FakeProber) Set(err error) (probes int) {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	p.err = err
	return p.probes
}

// PATGitHub accepts any PAT as the tenant owner's, for registration.
type PATGitHub struct{}

func (PATGitHub) Installation(context.Context, int64) (broker.Installation, error) {
	return broker.Installation{}, nil
}

func (PATGitHub) ValidatePAT(context.Context, string) (broker.PATOwner, error) {
	return broker.PATOwner{Owner: broker.Owner{Login: "bot", ID: 7, Type: broker.OwnerUser}, Scopes: []string{"read:packages"}}, nil
}

func MustGet(t *testing.T, reg *broker.Tenants, id string) broker.Tenant {
	t.Helper()
	tn, err := reg.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

var PrefixScope = broker.NamespaceScope{SelectorPrefix: broker.DefaultSelectorPrefix}
