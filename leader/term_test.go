package leader_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/notify"
	"github.com/credbroker/credbroker/broker/refresh"

	"github.com/credbroker/credbroker/internal/testenv/demo"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github"
	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
	"github.com/credbroker/credbroker/k8ssync"
	"github.com/credbroker/credbroker/leader"
)

// A term, started as the binary starts it but without the binary, mints
// once, writes the tenant's pull Secret, answers status through the
// Refresher it attached, and on the end of the term stops everything it
// started and detaches.
func TestATermPublishesAndStopsWhenItEnds(t *testing.T) {
	cp := testenv.Cluster(t, "shop")
	d := demo.Start(t)
	gh, fx, client, store, registry := d.GitHub, d.Fixture, d.Client, d.Store, d.Registry
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	owner := broker.Owner{Login: fx.Org.Login, ID: fx.Org.ID, Type: broker.OwnerOrganization}
	if _, _, err := registry.Create(ctx, broker.Tenant{ID: "shop", Owner: owner,
		App: &broker.GitHubApp{InstallationID: fx.InstallationID}, Namespaces: []string{"shop"}}); err != nil {
		t.Fatal(err)
	}

	var attached atomic.Pointer[refresh.Refresher]
	term := leader.Term{Kube: cp.Admin, Registry: registry, Source: client, Prober: github.NewPullProber(github.PullProberConfig{}),
		Credentials: store, Notifier: notify.NewNotifier(store, false, clock.RealClock{}, nil, log), Log: log,
		Attach: func(r *refresh.Refresher) func() {
			attached.Store(r)
			return func() { attached.Store(nil) }
		}}
	termCtx, end := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- term.Run(termCtx) }()

	var secret *corev1.Secret
	var err error
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		secret, err = cp.Admin.CoreV1().Secrets("shop").Get(ctx, "ghcr-secret", metav1.GetOptions{})
		return err == nil, testenv.Errorf("no pull Secret in shop: %v", err)
	})
	if secret.Type != corev1.SecretTypeDockerConfigJson || secret.Labels[k8ssync.LabelTenant] != "shop" {
		t.Errorf("Secret %s of type %s, labels %v", secret.Name, secret.Type, secret.Labels)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		r := attached.Load()
		if r == nil {
			return false, "no Refresher attached"
		}
		st := r.Status("shop")
		return st.State == broker.CredentialReady && len(st.Namespaces) == 1 && st.Namespaces[0].State == broker.SyncSynced,
			testenv.Errorf("status %+v", st)
	})
	if n := gh.Calls(emulator.RouteMintToken); n != 1 {
		t.Errorf("%d mints, want 1", n)
	}

	end()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the term did not stop when it ended")
	}
	if attached.Load() != nil {
		t.Error("the ended term's Refresher is still attached")
	}
}

// panicsOnce is a tenant store whose first listing panics, as a bug or a
// damaged page would.
type panicsOnce struct {
	broker.Store
	listed atomic.Int32
}

func (s *panicsOnce) ListTenants(ctx context.Context, after string, limit int) ([]broker.Tenant, error) {
	if s.listed.Add(1) == 1 {
		panic("a page of the tenant list is not what it should be")
	}
	return s.Store.ListTenants(ctx, after, limit)
}

// A panic inside a term's Refresher does not take the process down: the
// term ends, Hold starts a fresh one, and the tenant's Secret is written.
func TestAPanicEndsTheTermAndHoldStartsAnother(t *testing.T) {
	cp := testenv.Cluster(t, "web")
	d := demo.Start(t)
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := &panicsOnce{Store: d.Store}
	registry := broker.NewTenants(store, nil, d.Client, clock.RealClock{}, broker.TenantsConfig{})
	owner := broker.Owner{Login: d.Fixture.Org.Login, ID: d.Fixture.Org.ID, Type: broker.OwnerOrganization}
	if _, err := d.Store.CreateTenant(ctx, broker.Tenant{ID: "web", Owner: owner, SecretName: "ghcr-secret", Registries: []string{"ghcr.io"},
		App: &broker.GitHubApp{InstallationID: d.Fixture.InstallationID, Permissions: broker.DefaultAppPermissions()}, Namespaces: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	term := leader.Term{Kube: cp.Admin, Registry: registry, Source: d.Client, Credentials: d.Store,
		Notifier: notify.NewNotifier(d.Store, false, clock.RealClock{}, nil, log), Log: log,
		Attach: func(*refresh.Refresher) func() { return func() {} }, Restart: 100 * time.Millisecond}
	held := make(chan struct{})
	go func() { term.Hold(ctx); close(held) }()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, err := cp.Admin.CoreV1().Secrets("web").Get(ctx, "ghcr-secret", metav1.GetOptions{})
		return err == nil, testenv.Errorf("no pull Secret in web after %d listings: %v", store.listed.Load(), err)
	})
	if n := store.listed.Load(); n < 2 {
		t.Errorf("%d listings: the panicking term was not replaced", n)
	}
	cancel()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("Hold did not return when its context ended")
	}
}

// gatedSource holds every mint until its context ends: GitHub answering
// slowly while the leadership is lost.
type gatedSource struct {
	broker.Source
	entered, cut chan struct{}
}

func (s gatedSource) MintInstallationToken(ctx context.Context, _ int64, _ map[string]string, _ []string) (broker.Credential, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	close(s.cut)
	return broker.Credential{}, ctx.Err()
}

// Leadership lost mid-rotation: the renewal in flight ends with the term
// (it runs on the term's context, not on its own), the term returns at
// once rather than after the renewal's own deadline, and nothing is
// written for a leadership this replica no longer holds.
func TestLeadershipLostMidRotationEndsTheRotation(t *testing.T) {
	cp := testenv.Cluster(t, "web")
	d := demo.Start(t)
	log := slog.New(slog.DiscardHandler)
	owner := broker.Owner{Login: d.Fixture.Org.Login, ID: d.Fixture.Org.ID, Type: broker.OwnerOrganization}
	if _, _, err := d.Registry.Create(context.Background(), broker.Tenant{ID: "web", Owner: owner,
		App: &broker.GitHubApp{InstallationID: d.Fixture.InstallationID}, Namespaces: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	source := gatedSource{Source: d.Client, entered: make(chan struct{}, 1), cut: make(chan struct{})}
	term := leader.Term{Kube: cp.Admin, Registry: d.Registry, Source: source, Credentials: d.Store,
		Notifier: notify.NewNotifier(d.Store, false, clock.RealClock{}, nil, log), Log: log,
		Attach: func(*refresh.Refresher) func() { return func() {} }}
	ctx, lose := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- term.Run(ctx) }()
	select {
	case <-source.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the term never asked GitHub for a token")
	}
	lost := time.Now()
	lose()
	select {
	case err := <-done:
		t.Logf("the term ended %v after the leadership was lost (%v)", time.Since(lost), err)
	case <-time.After(30 * time.Second):
		t.Fatal("the term outlived its leadership")
	}
	select {
	case <-source.cut:
	case <-time.After(10 * time.Second):
		t.Error("the mint in flight went on after the leadership was lost")
	}
	if _, err := cp.Admin.CoreV1().Secrets("web").Get(context.Background(), "ghcr-secret", metav1.GetOptions{}); err == nil {
		t.Error("a pull Secret was written after the leadership was lost")
	}
}
