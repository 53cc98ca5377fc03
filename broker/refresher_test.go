package broker

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestDueTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r := NewRefresher(RefresherConfig{}, nil, nil, nil, slog.New(slog.DiscardHandler))
	tests := []struct {
		name string
		cred Credential
		want time.Time
	}{
		{"1h App token: 15m before expiry", Credential{IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, now.Add(45 * time.Minute)},
		{"10m token: three quarters in", Credential{IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)}, now.Add(7*time.Minute + 30*time.Second)},
		{"PAT without expiry: recheck in 6h", Credential{IssuedAt: now}, now.Add(6 * time.Hour)},
		{"PAT expiring in a year", Credential{IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(365 * 24 * time.Hour)}, now.Add(365*24*time.Hour - 15*time.Minute)},
		{"already inside the lead: now", Credential{ExpiresAt: now.Add(time.Minute)}, now.Add(time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.dueTime(tc.cred, now); !got.Equal(tc.want) {
				t.Errorf("due %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeSource mints numbered tokens and fails while failing is set.
type fakeSource struct {
	mu      sync.Mutex
	mints   int
	failing error
}

func (f *fakeSource) MintInstallationToken(_ context.Context, id int64, _ map[string]string, _ []string) (Credential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return Credential{}, f.failing
	}
	f.mints++
	return Credential{Kind: KindGitHubApp, Username: AppTokenUsername, Token: "ghs_" + string(rune('a'+f.mints)),
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (f *fakeSource) ValidatePAT(context.Context, string) (PATOwner, error) {
	return PATOwner{Owner: Owner{Login: "bot"}}, nil
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
func (s *recordingSink) Status(string) []NamespaceSync { return nil }
func (s *recordingSink) PublishedAll()                 { s.record("all") }
func (s *recordingSink) Report(id string, reason Reason, _ string) {
	s.record("report " + id + " " + string(reason))
}

func (s *recordingSink) snapshot() ([]string, map[string]Credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := map[string]Credential{}
	for k, v := range s.latest {
		latest[k] = v
	}
	return slices.Clone(s.calls), latest
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTestRegistry(t *testing.T) (*Registry, Store) {
	t.Helper()
	store := newMemStore()
	return NewRegistry(store, nil, nil, time.Now), store
}

func appTenantFor(id string) Tenant {
	return Tenant{ID: id, Owner: Owner{Login: "acme", ID: 1, Type: OwnerOrganization}, App: &GitHubApp{InstallationID: 1}}
}

func TestRefresherPublishesEveryTenantThenFollowsChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, _ := newTestRegistry(t)
	for _, id := range []string{"a", "b"} {
		if _, _, err := reg.Create(ctx, appTenantFor(id)); err != nil {
			t.Fatal(err)
		}
	}
	src, sink := &fakeSource{}, &recordingSink{}
	r := NewRefresher(RefresherConfig{Resync: time.Hour}, reg, src, sink, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	waitFor(t, "the first publication", func() bool { calls, _ := sink.snapshot(); return len(calls) >= 3 })
	calls, _ := sink.snapshot()
	if !slices.Equal(calls[:3], []string{"publish a", "publish b", "all"}) {
		t.Fatalf("calls %v: every tenant must be published before PublishedAll", calls)
	}

	// A change that needs a new credential, while the source fails, keeps
	// what was published and says why.
	_, before := sink.snapshot()
	src.mu.Lock()
	src.failing = &VerifyError{Cause: ReasonGitHubUnavailable, Msg: "GitHub is down"}
	src.mu.Unlock()
	if _, err := reg.Update(ctx, "a", "", func(t Tenant) (Tenant, error) {
		t.App.Permissions = map[string]string{"packages": "read", "metadata": "read"}
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	// The registry tells the running refresher itself.
	if err := reg.Delete(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal of b", func() bool { calls, _ := sink.snapshot(); return slices.Contains(calls, "remove b") })
	calls, after := sink.snapshot()
	if slices.Contains(calls[3:], "publish a") || after["a"].Token != before["a"].Token {
		t.Errorf("a failed refresh replaced the published credential: %v", calls)
	}
	if !slices.Contains(calls, "report a GITHUB_UNAVAILABLE") {
		t.Errorf("the failure was not reported to the sink: %v", calls)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestStatusFollowsTheCredential(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	tn, _, err := reg.Create(ctx, appTenantFor("s"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	src, sink := &fakeSource{}, &recordingSink{}
	r := NewRefresher(RefresherConfig{Now: func() time.Time { return now }}, reg, src, sink, slog.New(slog.DiscardHandler))

	if st := r.Status("s"); st.State != CredentialPending || st.Fingerprint != "" {
		t.Errorf("before any refresh: %+v", st)
	}
	r.refresh(ctx, tn)
	ready := r.Status("s")
	if ready.State != CredentialReady || ready.Kind != KindGitHubApp || ready.Fingerprint == "" || ready.LastError != nil {
		t.Fatalf("after a mint: %+v", ready)
	}
	src.failing = &VerifyError{Cause: ReasonInstallationSuspended, Msg: "suspended"}
	r.RefreshNow(ctx, tn)
	degraded := r.Status("s")
	if degraded.State != CredentialDegraded || degraded.Fingerprint != ready.Fingerprint ||
		degraded.LastError == nil || degraded.LastError.Reason != ReasonInstallationSuspended {
		t.Errorf("after a failed refresh: %+v", degraded)
	}
	if cred, registries, ok := r.Current("s"); !ok || cred.Fingerprint() != ready.Fingerprint || len(registries) != 1 {
		t.Errorf("current credential after a failure: %v %v %v", cred, registries, ok)
	}
	now = now.Add(2 * time.Hour) // past the last good credential's expiry
	if st := r.Status("s"); st.State != CredentialFailed {
		t.Errorf("with the credential expired: %s", st.State)
	}
}

func TestTenantsSharingASourceShareOneMint(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := reg.Create(ctx, appTenantFor(id)); err != nil {
			t.Fatal(err)
		}
	}
	other := appTenantFor("d")
	other.App.Permissions = map[string]string{"packages": "read", "metadata": "read"}
	if _, _, err := reg.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	src, sink := &fakeSource{}, &recordingSink{}
	r := NewRefresher(RefresherConfig{Now: func() time.Time { return now }}, reg, src, sink, slog.New(slog.DiscardHandler))
	if err := r.resync(ctx); err != nil {
		t.Fatal(err)
	}
	_, published := sink.snapshot()
	if src.mints != 2 {
		t.Errorf("%d mints for two distinct sources, want 2", src.mints)
	}
	if len(published) != 4 || published["a"].Token != published["b"].Token || published["b"].Token != published["c"].Token ||
		published["a"].Token == published["d"].Token {
		t.Errorf("published %v: a, b and c must share one credential, d its own", published)
	}

	// A tenant change that keeps the source reuses the credential.
	if _, err := reg.Update(ctx, "b", "", func(t Tenant) (Tenant, error) { t.Namespaces = []string{"b2"}; return t, nil }); err != nil {
		t.Fatal(err)
	}
	r.refreshTenant(ctx, "b")
	if src.mints != 2 {
		t.Errorf("a namespaces change minted (%d mints)", src.mints)
	}

	// When the shared credential is due, one mint renews it for all three.
	now = now.Add(46 * time.Minute)
	r.renewDue(ctx)
	_, renewed := sink.snapshot()
	if src.mints != 4 { // the a/b/c key and d's key were both due
		t.Errorf("%d mints after the renewal, want 4", src.mints)
	}
	if renewed["a"].Token == published["a"].Token || renewed["a"].Token != renewed["b"].Token || renewed["b"].Token != renewed["c"].Token {
		t.Errorf("renewal did not reach every tenant of the key: %v", renewed)
	}

	// A tenant that moves to another source leaves the shared credential.
	if _, err := reg.Update(ctx, "c", "", func(t Tenant) (Tenant, error) {
		t.App.Permissions = map[string]string{"packages": "read", "metadata": "read"}
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	r.refreshTenant(ctx, "c")
	_, moved := sink.snapshot()
	if moved["c"].Token != moved["d"].Token || src.mints != 4 {
		t.Errorf("c should now share d's credential without a mint: %v, %d mints", moved, src.mints)
	}
}
