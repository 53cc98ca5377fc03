package exchange

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"
	"github.com/credbroker/credbroker/broker/notify"

	"github.com/credbroker/credbroker/internal/testenv"
	clocktesting "k8s.io/utils/clock/testing"
)

// owners is a NamespaceOwners over a fixed map.
type owners map[string]broker.Tenant

func (o owners) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	if ns == "unsynced" {
		return broker.Tenant{}, false, fmt.Errorf("%w: not synced", broker.ErrUnavailable)
	}
	t, ok := o[ns]
	return t, ok, nil
}

// denials records what a DenialReporter is told.
type denials []broker.ExchangeDenial

func (d *denials) PullDenied(_ broker.PodIdentity, _ string, err *broker.DeniedError) {
	*d = append(*d, err.Denial)
}

// exchangeFixture has two tenants — a (PROVIDER) and b (SECRET) — with
// published credentials, and an Exchanger over them with the shared
// mirrors (testenv.ImageMirrors). Tenant a also has registry credentials,
// sealed as Tenants seals them: quay.io for owner acme, and the
// path-style mirror mirror.example.com; none for the host-style mirror
// ghcr-mirror.example.com.
type exchangeFixture struct {
	x        *Exchanger
	pubs     *Publications
	sealer   *broker.Sealer
	clock    *clocktesting.FakePassiveClock
	events   *brokertest.MemEvents
	reported *denials
	a, b     broker.Tenant
}

// sealedRegistryCredential is c with password sealed for tenantID, as the
// tenant registry (broker.Tenants) stores it.
func sealedRegistryCredential(t testing.TB, sealer *broker.Sealer, tenantID string, c broker.RegistryCredential, password string) broker.RegistryCredential {
	t.Helper()
	sealed, err := sealer.SealAs(broker.RegistryCredentialData(tenantID, c.Host), password)
	if err != nil {
		t.Fatal(err)
	}
	c.Sealed, c.Fingerprint = sealed, broker.Fingerprint(password)
	return c
}

func newExchangeFixture(t testing.TB) *exchangeFixture {
	t.Helper()
	sealer, err := broker.NewSealer(make([]byte, broker.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	f := &exchangeFixture{clock: clocktesting.NewFakePassiveClock(now), events: brokertest.NewMemEvents(), reported: &denials{},
		pubs: NewPublications(NewMemoryPublications(), sealer), sealer: sealer}
	f.a = broker.Tenant{ID: "a", Owner: broker.Owner{Login: "Acme", ID: 1}, Registries: []string{"ghcr.io"}, AllowedOwners: []string{"acme-base"}, PullMode: broker.PullProvider,
		RegistryCredentials: []broker.RegistryCredential{
			sealedRegistryCredential(t, sealer, "a", broker.RegistryCredential{Host: "quay.io", Username: "acme+puller", Owners: []string{"acme"}}, "quay-secret"),
			sealedRegistryCredential(t, sealer, "a", broker.RegistryCredential{Host: "mirror.example.com", Username: "acme-mirror"}, "mirror-secret"),
		}}
	var mirrors []broker.Mirror
	for _, text := range testenv.ImageMirrors {
		m, err := broker.ParseMirror(text)
		if err != nil {
			t.Fatal(err)
		}
		mirrors = append(mirrors, m)
	}
	f.b = broker.Tenant{ID: "b", Owner: broker.Owner{Login: "bravo", ID: 2}, Registries: []string{"ghcr.io"}, PullMode: broker.PullSecret}
	ctx := context.Background()
	for _, tc := range []struct {
		t    broker.Tenant
		cred broker.Credential
	}{
		{f.a, broker.Credential{Kind: broker.KindGitHubApp, Username: broker.AppTokenUsername, Token: "ghs_a", ExpiresAt: now.Add(time.Hour)}},
		{withMode(f.b, broker.PullBoth), broker.Credential{Kind: broker.KindPAT, Username: "bravo-bot", Token: "ghp_b"}},
	} {
		if err := f.pubs.Put(ctx, tc.t, tc.cred); err != nil {
			t.Fatal(err)
		}
	}
	notifier := notify.NewNotifier(f.events, true, f.clock, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.x = New(owners{"a-ns": f.a, "b-ns": f.b}, f.pubs, Config{Clock: f.clock, Notifier: notifier, Reporter: f.reported,
		Images: broker.ImageRules{Public: []string{"ghcr.io/platform", "docker.io/istio"}, Mirrors: mirrors}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	return f
}

func withMode(t broker.Tenant, m broker.PullMode) broker.Tenant {
	t.PullMode = m
	return t
}

func pod(ns string) broker.PodIdentity {
	return broker.PodIdentity{Namespace: ns, ServiceAccount: "default", Pod: "app-1", PodUID: "uid-1", Node: "node-1"}
}

// TestExchangeHandsOutOnlyTheNamespaceTenantsCredentialForItsOwnImages
// plays the Pods of a hostile tenant: every way to reach another tenant's
// credential or another owner's image is denied with its reason.
func TestExchangeHandsOutOnlyTheNamespaceTenantsCredentialForItsOwnImages(t *testing.T) {
	f := newExchangeFixture(t)
	ctx := context.Background()
	tests := []struct {
		name       string
		pod        broker.PodIdentity
		image      string
		wantDenial broker.ExchangeDenial
		wantPrefix string
		wantToken  string
	}{
		{"own image", pod("a-ns"), "ghcr.io/acme/app", "", "ghcr.io/acme", "ghs_a"},
		{"own image, the host in capitals", pod("a-ns"), "GHCR.io/acme/app", "", "ghcr.io/acme", "ghs_a"},
		{"own image, tagged (the login is Acme)", pod("a-ns"), "ghcr.io/acme/app:v1", "", "ghcr.io/acme", "ghs_a"},
		{"a granted owner's image", pod("a-ns"), "ghcr.io/acme-base/runtime@sha256:" + strings.Repeat("a", 64), "", "ghcr.io/acme-base", "ghs_a"},
		{"another tenant's owner", pod("a-ns"), "ghcr.io/bravo/app", broker.DenyImageNotAllowed, "", ""},
		{"another registry", pod("a-ns"), "docker.io/acme/app", broker.DenyImageNotAllowed, "", ""},
		{"no registry (Docker Hub)", pod("a-ns"), "acme/app", broker.DenyImageNotAllowed, "", ""},
		{"a bare registry", pod("a-ns"), "ghcr.io/app", broker.DenyImageNotAllowed, "", ""},
		{"not an image", pod("a-ns"), "ghcr.io/acme/App!!", broker.DenyImageNotAllowed, "", ""},
		{"a namespace no tenant holds", pod("other-ns"), "ghcr.io/acme/app", broker.DenyNamespaceNotBound, "", ""},
		{"a tenant in pull mode SECRET", pod("b-ns"), "ghcr.io/bravo/app", broker.DenyPullModeSecret, "", ""},
		{"a token bound to no Pod", broker.PodIdentity{Namespace: "a-ns", ServiceAccount: "default"}, "ghcr.io/acme/app", broker.DenyTokenNotPodBound, "", ""},
		{"a public scope's image: no credential goes with it", pod("a-ns"), "ghcr.io/platform/base:1", broker.DenyPublicImage, "", ""},
		{"a public registry, another owner", pod("a-ns"), "docker.io/evil/proxy", broker.DenyImageNotAllowed, "", ""},
		// Hole 3: each registry host gets its own credential, never the
		// GitHub token; a host without one of the tenant's is denied.
		{"quay.io, where the tenant has a credential: quay's, never the GitHub token", pod("a-ns"), "quay.io/acme/app:1", "", "quay.io/acme", "quay-secret"},
		{"quay.io, the host in capitals", pod("a-ns"), "QUAY.IO/acme/app", "", "quay.io/acme", "quay-secret"},
		{"quay.io, an owner the quay credential does not cover", pod("a-ns"), "quay.io/bravo/app", broker.DenyImageNotAllowed, "", ""},
		{"a host-style mirror the tenant has no credential for: denied, never the GitHub token", pod("a-ns"), "ghcr-mirror.example.com/acme/app", broker.DenyNoRegistryCredential, "", ""},
		{"a public image through a mirror: no credential goes with it", pod("a-ns"), "mirror.example.com/docker.io/istio/proxyv2", broker.DenyPublicImage, "", ""},
		// Hole 6: a path-style mirror's answer is keyed to the owner, not
		// to every owner behind the mirror.
		{"a path-style mirror: the mirror's credential, keyed to the owner", pod("a-ns"), "mirror.example.com/ghcr.io/acme/app", "", "mirror.example.com/ghcr.io/acme", "mirror-secret"},
		{"a path-style mirror, a granted owner", pod("a-ns"), "mirror.example.com/ghcr.io/acme-base/runtime:2", "", "mirror.example.com/ghcr.io/acme-base", "mirror-secret"},
		{"a path-style mirror, another owner", pod("a-ns"), "mirror.example.com/ghcr.io/bravo/app", broker.DenyImageNotAllowed, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := f.x.Exchange(ctx, tc.pod, tc.image)
			if tc.wantDenial != "" {
				var d *broker.DeniedError
				if !errors.As(err, &d) || d.Denial != tc.wantDenial {
					t.Fatalf("got %+v, %v; want denial %s", g, err, tc.wantDenial)
				}
				if g.Credential.Token != "" {
					t.Errorf("a denial came with a credential")
				}
				if strings.Contains(d.Msg, "ghs_") || strings.Contains(d.Msg, "ghp_") || strings.Contains(d.Msg, "-secret") || strings.Contains(d.Msg, "bravo") && tc.pod.Namespace != "b-ns" && !strings.Contains(tc.image, "bravo") {
					t.Errorf("the denial says too much: %s", d.Msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.Prefix != tc.wantPrefix || g.Credential.Token != tc.wantToken || g.TenantID != "a" || g.Fingerprint != broker.Fingerprint(tc.wantToken) {
				t.Errorf("got prefix %q token %q tenant %q; want %q %q a", g.Prefix, g.Credential.Token, g.TenantID, tc.wantPrefix, tc.wantToken)
			}
			// The credential goes to the registry it belongs to, the one
			// the key names: the GitHub token to ghcr.io only.
			if host, _, _ := strings.Cut(g.Prefix, "/"); g.Host != host || (g.Credential.Token == "ghs_a") != (host == "ghcr.io") {
				t.Errorf("the credential for %s was handed out for %s", g.Host, g.Prefix)
			}
		})
	}
	t.Run("an unanswerable question is an error, not a denial", func(t *testing.T) {
		_, err := f.x.Exchange(ctx, pod("unsynced"), "ghcr.io/acme/app")
		var d *broker.DeniedError
		if err == nil || errors.As(err, &d) {
			t.Errorf("got %v", err)
		}
	})
}

// TestExchangeCacheDurationAndReadiness: the kubelet may cache a grant no
// longer than the maximum, nor past the credential's expiry (less a
// margin); nothing published, expired or proved for another owner is not
// ready.
func TestExchangeCacheDurationAndReadiness(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		owner      broker.Owner  // the tenant's owner when asked; f.a's when zero
		published  bool          // a credential is published
		left       time.Duration // its life left; 0: it never expires
		advance    time.Duration
		wantCache  time.Duration
		wantDenial broker.ExchangeDenial
	}{
		{"an hour left: the maximum", broker.Owner{}, true, time.Hour, 0, broker.DefaultProviderCache, ""},
		{"five minutes left: until a minute before", broker.Owner{}, true, 5 * time.Minute, 0, 4 * time.Minute, ""},
		{"thirty seconds left: handed out, not cached", broker.Owner{}, true, 30 * time.Second, 0, 0, ""},
		{"no expiry (PAT)", broker.Owner{}, true, 0, 0, broker.DefaultProviderCache, ""},
		{"expired", broker.Owner{}, true, time.Minute, 2 * time.Minute, 0, broker.DenyCredentialNotReady},
		{"nothing published", broker.Owner{}, false, 0, 0, 0, broker.DenyCredentialNotReady},
		{"proved for the owner before a change", broker.Owner{Login: "acme", ID: 99}, true, 0, 0, 0, broker.DenyCredentialNotReady},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newExchangeFixture(t)
			if tc.published {
				cred := broker.Credential{Token: "t1"}
				if tc.left != 0 {
					cred.ExpiresAt = f.clock.Now().Add(tc.left)
				}
				if err := f.pubs.Put(ctx, f.a, cred); err != nil {
					t.Fatal(err)
				}
			} else if err := f.pubs.Remove(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			asked := f.a
			if tc.owner.ID != 0 {
				asked.Owner = tc.owner
			}
			f.x.owners = owners{"a-ns": asked}
			f.clock.SetTime(f.clock.Now().Add(tc.advance))
			g, err := f.x.Exchange(ctx, pod("a-ns"), "ghcr.io/acme/app")
			var d *broker.DeniedError
			switch {
			case tc.wantDenial != "" && (!errors.As(err, &d) || d.Denial != tc.wantDenial):
				t.Fatalf("got %v, want %s", err, tc.wantDenial)
			case tc.wantDenial == "" && err != nil:
				t.Fatal(err)
			case tc.wantDenial == "" && g.CacheFor != tc.wantCache:
				t.Errorf("cache for %v, want %v", g.CacheFor, tc.wantCache)
			}
			// The admission webhook's question has the same answer.
			if ready := f.x.CredentialReady(asked); (ready == nil) != (tc.wantDenial == "") || (ready != nil && !errors.As(ready, &d)) {
				t.Errorf("CredentialReady: %v, want denial %q", ready, tc.wantDenial)
			}
			if ready := f.x.CredentialReady(withMode(asked, broker.PullSecret)); ready != nil {
				t.Errorf("CredentialReady of a tenant pulling with its Secret: %v, want nil (not this replica's to know)", ready)
			}
		})
	}
}

// TestARegistryCredentialIsHandedOutOnItsOwn: a tenant's credential for
// another registry is answered whatever the state of its GitHub credential,
// cached within its own expiry, refused once expired, opened anew when
// rotated, and opens only under the tenant it was sealed for.
func TestARegistryCredentialIsHandedOutOnItsOwn(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		left       time.Duration // the quay credential's life left; 0: no expiry
		github     bool          // the GitHub credential is published
		sealedFor  string        // the tenant the password was sealed for; "a" when empty
		wantCache  time.Duration
		wantDenial broker.ExchangeDenial
		wantError  bool
	}{
		{"no expiry: the maximum", 0, true, "", broker.DefaultProviderCache, "", false},
		{"five minutes left: until a minute before", 5 * time.Minute, true, "", 4 * time.Minute, "", false},
		{"expired", -time.Second, true, "", 0, broker.DenyCredentialNotReady, false},
		{"the GitHub credential not published: quay's still is", 0, false, "", broker.DefaultProviderCache, "", false},
		{"sealed for another tenant: it does not open", 0, true, "b", 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newExchangeFixture(t)
			c := broker.RegistryCredential{Host: "quay.io", Username: "acme+puller", Owners: []string{"acme"}}
			if tc.left != 0 {
				c.ExpiresAt = f.clock.Now().Add(tc.left)
			}
			sealedFor := cmp.Or(tc.sealedFor, "a")
			asked := f.a
			asked.RegistryCredentials = []broker.RegistryCredential{sealedRegistryCredential(t, f.sealer, sealedFor, c, "quay-secret")}
			f.x.owners = owners{"a-ns": asked}
			if !tc.github {
				if err := f.pubs.Remove(ctx, "a"); err != nil {
					t.Fatal(err)
				}
			}
			g, err := f.x.Exchange(ctx, pod("a-ns"), "quay.io/acme/app")
			var d *broker.DeniedError
			switch {
			case tc.wantError && (err == nil || errors.As(err, &d)):
				t.Fatalf("got %+v, %v; want an error", g, err)
			case tc.wantDenial != "" && (!errors.As(err, &d) || d.Denial != tc.wantDenial):
				t.Fatalf("got %v, want %s", err, tc.wantDenial)
			case tc.wantDenial == "" && !tc.wantError && err != nil:
				t.Fatal(err)
			case tc.wantDenial == "" && !tc.wantError && (g.CacheFor != tc.wantCache || g.Credential.Token != "quay-secret" || !g.Credential.ExpiresAt.Equal(c.ExpiresAt)):
				t.Errorf("got token %q cached %v expiring %v; want quay-secret, %v, %v", g.Credential.Token, g.CacheFor, g.Credential.ExpiresAt, tc.wantCache, c.ExpiresAt)
			}
			if err != nil && (strings.Contains(err.Error(), "quay-secret") || g.Credential.Token != "") {
				t.Errorf("a refusal carries the password: %v", err)
			}
		})
	}
	t.Run("rotated: the new password at once", func(t *testing.T) {
		f := newExchangeFixture(t)
		for _, password := range []string{"quay-old", "quay-new"} {
			asked := f.a
			asked.RegistryCredentials = []broker.RegistryCredential{sealedRegistryCredential(t, f.sealer, "a",
				broker.RegistryCredential{Host: "quay.io", Username: "acme+puller", Owners: []string{"acme"}}, password)}
			f.x.owners = owners{"a-ns": asked}
			g, err := f.x.Exchange(ctx, pod("a-ns"), "quay.io/acme/app")
			if err != nil || g.Credential.Token != password || g.Fingerprint != broker.Fingerprint(password) {
				t.Fatalf("got %q (%v), want %q", g.Credential.Token, err, password)
			}
		}
	})
}

// TestRepeatedDenialsRaisePullDeniedUntilAPodGetsTheCredential: one denial
// is told to the Pod only; DenialsBeforeEvent in a window raise
// PULL_DENIED for the tenant once; the next grant there resolves it.
func TestRepeatedDenialsRaisePullDeniedUntilAPodGetsTheCredential(t *testing.T) {
	f := newExchangeFixture(t)
	ctx := context.Background()
	types := func() []broker.EventType {
		evs, _ := f.events.EventsAfter(ctx, "", 100)
		var out []broker.EventType
		for _, ev := range evs {
			out = append(out, ev.Type)
		}
		return out
	}
	for i := range broker.DenialsBeforeEvent + 2 {
		if _, err := f.x.Exchange(ctx, pod("a-ns"), "ghcr.io/bravo/app"); err == nil {
			t.Fatal("another owner's image was handed a credential")
		}
		if got := len(types()); (i+1 < broker.DenialsBeforeEvent && got != 0) || (i+1 >= broker.DenialsBeforeEvent && got != 1) {
			t.Fatalf("after %d denials: events %v", i+1, types())
		}
	}
	if len(*f.reported) != broker.DenialsBeforeEvent+2 {
		t.Errorf("the Pod was told of %d denials, want every one", len(*f.reported))
	}
	if _, err := f.x.Exchange(ctx, pod("a-ns"), "ghcr.io/acme/app"); err != nil {
		t.Fatal(err)
	}
	if got := types(); len(got) != 2 || got[0] != broker.EventPullDenied || got[1] != broker.EventRecovered {
		t.Errorf("events %v, want PULL_DENIED then RECOVERED", got)
	}
	// A tenant that pulls with its Secret is refused quietly: no Pod Event,
	// no PULL_DENIED, whatever the count.
	reported := len(*f.reported)
	for range broker.DenialsBeforeEvent + 1 {
		_, _ = f.x.Exchange(ctx, pod("b-ns"), "ghcr.io/bravo/app")
	}
	if got := types(); len(*f.reported) != reported || len(got) != 2 {
		t.Errorf("pull mode SECRET: %d Pod reports, events %v; want none", len(*f.reported)-reported, got)
	}
	// Denials spread wider than the window raise nothing.
	f2 := newExchangeFixture(t)
	for range broker.DenialsBeforeEvent + 1 {
		_, _ = f2.x.Exchange(ctx, pod("a-ns"), "ghcr.io/bravo/app")
		f2.clock.SetTime(f2.clock.Now().Add(broker.DenialWindow))
	}
	if evs, _ := f2.events.EventsAfter(ctx, "", 10); len(evs) != 0 {
		t.Errorf("denials a window apart raised %v", evs)
	}
}

// TestPublicationsFollowThePullMode: a tenant the provider does not serve
// has no publication; one moved to SECRET loses it; a publication opens
// only under its own tenant.
func TestPublicationsFollowThePullMode(t *testing.T) {
	ctx := context.Background()
	sealer, err := broker.NewSealer(make([]byte, broker.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryPublications()
	pubs := NewPublications(store, sealer)
	cred := broker.Credential{Kind: broker.KindPAT, Username: "bot", Token: "ghp_secret"}
	a := broker.Tenant{ID: "a", Owner: broker.Owner{Login: "acme", ID: 1}, PullMode: broker.PullSecret}
	if err := pubs.Put(ctx, a, cred); err != nil {
		t.Fatal(err)
	}
	if got := store.PublishedTenants(); len(got) != 0 {
		t.Fatalf("a SECRET tenant was published for the provider: %v", got)
	}
	if err := pubs.Put(ctx, withMode(a, broker.PullProvider), cred); err != nil {
		t.Fatal(err)
	}
	fp, sealed, ok := store.Publication("a")
	if !ok || fp != cred.Fingerprint() || strings.Contains(string(sealed), "ghp_secret") {
		t.Fatalf("publication %q %q %v: want the fingerprint and the token sealed", fp, sealed, ok)
	}
	// Copied under another tenant, it does not open.
	if err := store.PutPublication(ctx, "b", fp, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := pubs.open("b"); err == nil {
		t.Error("a publication copied to another tenant opened")
	}
	if err := pubs.Put(ctx, a, cred); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := store.Publication("a"); ok {
		t.Error("a tenant moved back to SECRET kept its publication")
	}
}

// BenchmarkExchange is a warm exchange (publication opened, token
// reviewed) from parallel callers, with the audit line written (to
// io.Discard, through the JSON handler). It reports p50 and p99 latency.
func BenchmarkExchange(b *testing.B) {
	f := newExchangeFixture(b)
	f.x.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	f.x.cfg.Reporter = nil
	ctx := context.Background()
	if _, err := f.x.Exchange(ctx, pod("a-ns"), "ghcr.io/acme/app"); err != nil {
		b.Fatal(err)
	}
	testenv.ParallelLatencies(b, 1, func() error {
		_, err := f.x.Exchange(ctx, pod("a-ns"), "ghcr.io/acme/app")
		return err
	})
}

// BenchmarkExchangeOfARegistryCredential is BenchmarkExchange for an image
// on quay.io, answered with the tenant's quay credential: opened once, then
// from memory (by fingerprint), never decrypted per pull.
func BenchmarkExchangeOfARegistryCredential(b *testing.B) {
	f := newExchangeFixture(b)
	f.x.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	f.x.cfg.Reporter = nil
	ctx := context.Background()
	if _, err := f.x.Exchange(ctx, pod("a-ns"), "quay.io/acme/app"); err != nil {
		b.Fatal(err)
	}
	testenv.ParallelLatencies(b, 1, func() error {
		_, err := f.x.Exchange(ctx, pod("a-ns"), "quay.io/acme/app")
		return err
	})
}

// unsynced is a PublicationStore still filling its cache.
type unsynced struct{ *MemoryPublications }

func (unsynced) Synced() bool { return false }

// TestExchangeBeforeTheCachesFillIsUnavailable: a replica that has not read
// the publications yet says "retry", not "not ready" (which would count
// towards PULL_DENIED) and not a credential.
func TestExchangeBeforeTheCachesFillIsUnavailable(t *testing.T) {
	f := newExchangeFixture(t)
	f.x.pubs = NewPublications(unsynced{NewMemoryPublications()}, nil)
	_, err := f.x.Exchange(context.Background(), pod("a-ns"), "ghcr.io/acme/app")
	var d *broker.DeniedError
	if !errors.Is(err, broker.ErrUnavailable) || errors.As(err, &d) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
	_, err = f.x.Exchange(context.Background(), pod("unsynced"), "ghcr.io/acme/app")
	if !errors.Is(err, broker.ErrUnavailable) || errors.As(err, &d) {
		t.Errorf("owners not synced: %v", err)
	}
}
