package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"
)

type rateLimitErr time.Duration

func (e rateLimitErr) Error() string { return "rate limited" }

func (e rateLimitErr) Reason() Reason { return ReasonRateLimited }

func (e rateLimitErr) RetryAfter() time.Duration { return time.Duration(e) }

func rateLimited(d time.Duration) error { return rateLimitErr(d) }

// fakeSource mints numbered 1-hour tokens dated by its clock, and fails
// while failing is set.
type fakeSource struct {
	mu      sync.Mutex
	now     func() time.Time
	mints   int
	failing error
	pat     PATOwner
	// gate, when set, holds every mint until it is closed or the mint's
	// context ends; entered hears of each mint that waits there.
	gate    chan struct{}
	entered chan struct{}
}

func (f *fakeSource) MintInstallationToken(ctx context.Context, id int64, _ map[string]string, _ []string) (Credential, error) {
	f.mu.Lock()
	gate, entered := f.gate, f.entered
	f.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return Credential{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return Credential{}, f.failing
	}
	f.mints++
	now := f.clock()
	return Credential{Kind: KindGitHubApp, Username: AppTokenUsername, Token: fmt.Sprintf("ghs_%d_%d", id, f.mints),
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, nil
}

func (f *fakeSource) ValidatePAT(context.Context, string) (PATOwner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return PATOwner{}, f.failing
	}
	return f.pat, nil
}

func (f *fakeSource) clock() time.Time {
	if f.now == nil {
		return time.Now()
	}
	return f.now()
}

func (f *fakeSource) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = err
}

func (f *fakeSource) minted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mints
}

// recordingSink remembers what it was told, in order.
type recordingSink struct {
	mu     sync.Mutex
	calls  []string
	latest map[string]Credential
}

func (s *recordingSink) record(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

func (s *recordingSink) Publish(_ context.Context, t Tenant, c Credential) error {
	s.mu.Lock()
	if s.latest == nil {
		s.latest = map[string]Credential{}
	}
	s.latest[t.ID] = c
	s.mu.Unlock()
	s.record("publish " + t.ID)
	return nil
}

func (s *recordingSink) Remove(_ context.Context, id string) error {
	s.record("remove " + id)
	return nil
}

func (s *recordingSink) PublishedAll() { s.record("all") }

func (s *recordingSink) Report(id string, reason Reason, _ string) {
	s.record("report " + id + " " + string(reason))
}

func (s *recordingSink) snapshot() ([]string, map[string]Credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), maps.Clone(s.latest)
}

func newTestRegistry(t *testing.T) (*Tenants, Store) {
	t.Helper()
	store := newMemStore()
	// Tenants of these tests differ by permissions to get keys of their own.
	policy := TenantsConfig{AppPermissions: map[string]string{"packages": "read", "metadata": "read"}}
	return NewTenants(store, nil, nil, clock.RealClock{}, policy), store
}

func appTenantFor(id string) Tenant {
	return Tenant{ID: id, Owner: Owner{Login: "acme", ID: 1, Type: OwnerOrganization}, App: &GitHubApp{InstallationID: 1}}
}

type fakeProber struct {
	mu     sync.Mutex
	probes int
	err    error
	hangs  string // an image whose registry never answers
}

func (p *fakeProber) Probe(ctx context.Context, _ Credential, image string) error {
	p.mu.Lock()
	p.probes++
	err, hangs := p.err, p.hangs
	p.mu.Unlock()
	if image == hangs {
		<-ctx.Done()
		return fmt.Errorf("GET https://%s: %w", image, ctx.Err())
	}
	return err
}

func (p *fakeProber) set(err error) (probes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
	return p.probes
}

// patGitHub accepts any PAT as the tenant owner's, for registration.
type patGitHub struct{}

func (patGitHub) Installation(context.Context, int64) (Installation, error) {
	return Installation{}, nil
}

func (patGitHub) ValidatePAT(context.Context, string) (PATOwner, error) {
	return PATOwner{Owner: Owner{Login: "bot", ID: 7, Type: OwnerUser}, Scopes: []string{"read:packages"}}, nil
}

func mustGet(t *testing.T, reg *Tenants, id string) Tenant {
	t.Helper()
	tn, err := reg.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

var prefixScope = NamespaceScope{SelectorPrefix: DefaultSelectorPrefix}
