package k8ssync

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/exchange"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
)

// brokerClient is a client as the credbroker ServiceAccount.
func brokerClient(t testing.TB) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// runUntilCleanup runs fn(ctx) until the test ends.
func runUntilCleanup(t *testing.T, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fn(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestNamespaceOwnersAsAReplicaSeesThem: a replica that does not lead
// answers which tenant holds a namespace from its caches, by the Syncer's
// rule, and follows tenants and labels as they change.
func TestNamespaceOwnersAsAReplicaSeesThem(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	client := brokerClient(t)
	home := unique("store")
	createNamespace(t, home, nil)
	listed, selected, both, twice := unique("listed"), unique("selected"), unique("both"), unique("twice")
	createNamespace(t, listed, map[string]string{"team": "x"})
	createNamespace(t, selected, map[string]string{"team": "x"})
	createNamespace(t, twice, map[string]string{"team": "x", "tier": "y"})
	createNamespace(t, both, nil)
	store := NewStore(client, home)
	for _, tn := range []broker.Tenant{
		{ID: "lister", Owner: broker.Owner{Login: "l", ID: 1}, Namespaces: []string{listed, both, home}},
		{ID: "team-x", Owner: broker.Owner{Login: "x", ID: 2}, NamespaceSelector: "team=x"},
		{ID: "tier-y", Owner: broker.Owner{Login: "y", ID: 3}, NamespaceSelector: "tier=y"},
	} {
		if _, err := store.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	tenants := NewTenantInformer(client, home)
	owners := NewNamespaceInformer(client, tenants, broker.NamespaceScope{Reserved: []string{home}})
	if _, _, err := owners.NamespaceOwner(listed); !errors.Is(err, errNotSynced) {
		t.Fatalf("before the caches fill: %v, want errNotSynced", err)
	}
	runUntilCleanup(t, tenants.Run)
	runUntilCleanup(t, owners.Run)
	owner := func(ns string) string {
		tn, ok, err := owners.NamespaceOwner(ns)
		if err != nil {
			return "error: " + err.Error()
		}
		if !ok {
			return ""
		}
		return tn.ID
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the caches never filled", func() bool { return owner(listed) != "error: "+errNotSynced.Error() }))
	for _, tc := range []struct{ ns, want, why string }{
		{listed, "lister", "listed beats a selector that matches too"},
		{both, "lister", "listed"},
		{selected, "team-x", "one selector matches"},
		{twice, "", "two selectors match and nobody holds it"},
		{home, "", "reserved, though listed"},
		{"no-such-namespace", "", "not a namespace"},
	} {
		if got := owner(tc.ns); got != tc.want {
			t.Errorf("%s (%s): %q, want %q", tc.ns, tc.why, got, tc.want)
		}
	}

	// The tenant that listed it goes: the selector's tenant gets it.
	if err := store.DeleteTenant(ctx, "lister", ""); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds(listed+" did not pass to team-x", func() bool { return owner(listed) == "team-x" && owner(both) == "" }))
	// A label removed: the namespace is nobody's.
	nsObj, err := admin.CoreV1().Namespaces().Get(ctx, selected, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Labels = map[string]string{"team": "z"}
	if _, err := admin.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds(selected+" still held after its label went", func() bool { return owner(selected) == "" }))
}

// TestPublicationsReachAnotherReplicaSealed: what the leader publishes is
// read by another replica's cache, never in plain text and never as a pull
// Secret, and goes with the tenant.
func TestPublicationsReachAnotherReplicaSealed(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	client := brokerClient(t)
	home := unique("store")
	createNamespace(t, home, nil)
	sealer, err := broker.NewSealer([]byte(strings.Repeat("k", broker.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	leaderSide := NewPublicationSecrets(client, NewStore(client, home))
	otherSide := NewPublicationSecrets(client, NewStore(client, home))
	runUntilCleanup(t, leaderSide.Run)
	runUntilCleanup(t, otherSide.Run)
	testenv.Eventually(t, 30*time.Second, testenv.Holds("caches never filled", func() bool { return leaderSide.Synced() && otherSide.Synced() }))
	tn := broker.Tenant{ID: "pub", Owner: broker.Owner{Login: "acme", ID: 1}, Registries: []string{"ghcr.io"}, PullMode: broker.PullProvider}
	cred := broker.Credential{Kind: broker.KindGitHubApp, Username: broker.AppTokenUsername, Token: "ghs_publishedToken", ExpiresAt: time.Now().Add(time.Hour)}
	if err := exchange.NewPublications(leaderSide, sealer).Put(ctx, tn, cred); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the other replica never saw the publication", func() bool {
		fp, _, ok := otherSide.Publication("pub")
		return ok && fp == cred.Fingerprint()
	}))
	reader := exchange.New(fixedOwner{tn}, exchange.NewPublications(otherSide, sealer), exchange.Config{}, slog.New(slog.DiscardHandler))
	g, err := reader.Exchange(ctx, broker.PodIdentity{Namespace: "any", ServiceAccount: "default", Pod: "p"}, "ghcr.io/acme/app")
	if err != nil || g.Credential.Token != cred.Token {
		t.Fatalf("the other replica's exchange: %+v %v", g, err)
	}
	secrets, err := admin.CoreV1().Secrets(home).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if _, isPull := s.Labels[LabelTenant]; isPull {
			t.Errorf("publication %s carries the pull Secret label", s.Name)
		}
		for _, v := range s.Data {
			if strings.Contains(string(v), cred.Token) {
				t.Errorf("Secret %s holds the token in plain text", s.Name)
			}
		}
	}
	if err := leaderSide.DeletePublication(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the publication stayed", func() bool {
		_, _, ok := otherSide.Publication("pub")
		return !ok
	}))
}

type fixedOwner struct{ t broker.Tenant }

func (f fixedOwner) NamespaceOwner(string) (broker.Tenant, bool, error) { return f.t, true, nil }

// TestPodTokensNameThePodTheTokenIsBoundTo: the API server's TokenReview of
// a token bound to a Pod names the Pod; one bound to nothing, or issued for
// another audience, is refused with its reason.
func TestPodTokensNameThePodTheTokenIsBoundTo(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := unique("pods")
	createNamespace(t, ns, nil)
	pod := testenv.PodOfServiceAccount(t, admin, ns, "app", "app-1")
	issue := func(audience string, bound bool) string {
		return testenv.ServiceAccountToken(t, admin, pod, audience, bound)
	}
	tokens := auth.NewPodTokens(TokenReviewer(brokerClient(t), "credbroker"),
		auth.TokenChecks{Audience: "credbroker", Keys: auth.NewServiceAccountKeys(ServiceAccountIssuer(brokerClient(t)), nil)})
	got, err := tokens.PodOf(ctx, issue("credbroker", true))
	if err != nil || got.Namespace != ns || got.ServiceAccount != "app" || got.Pod != "app-1" || got.PodUID != string(pod.UID) {
		t.Errorf("a Pod-bound token: %+v %v", got, err)
	}
	for _, tc := range []struct {
		name  string
		token string
		want  broker.ExchangeDenial
	}{
		{"bound to no Pod", issue("credbroker", false), broker.DenyTokenNotPodBound},
		{"for another audience", issue("vault", true), broker.DenyTokenRejected},
		{"not a token", "not-a-token", broker.DenyTokenRejected},
	} {
		_, err := tokens.PodOf(ctx, tc.token)
		var d *broker.DeniedError
		if !errors.As(err, &d) || d.Denial != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}
