package k8ssync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/auth/authtest"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
)

// A ServiceAccount token the API server issued is reviewed by the API
// server, as the credbroker ServiceAccount (rbac.yaml grants it
// tokenreviews), for credbroker's audience only.
func TestTokenReviewerAcceptsServiceAccountTokensForItsAudience(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := unique("callers")
	createNamespace(t, ns, nil)
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "backend"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	issue := func(audience string) string {
		t.Helper()
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "backend", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	review := TokenReviewer(client, "credbroker")
	tests := []struct {
		name     string
		token    string
		wantOK   bool
		wantUser string
	}{
		{"a token for credbroker", issue("credbroker"), true, "system:serviceaccount:" + ns + ":backend"},
		{"a token for another audience", issue("vault"), false, ""},
		{"garbage", "not-a-token", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev, err := review(ctx, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Authenticated != tc.wantOK || rev.User != tc.wantUser {
				t.Errorf("review: %+v", rev)
			}
		})
	}
}

// The attacker of issue 30, hole 2: a namespace admin of a bound
// namespace (every verb on every resource there, so create on
// serviceaccounts/token) asks the TokenRequest API for a token for the
// credential provider's audience bound to a running Pod, which the
// exchange would trade for the tenant's credential. The API server
// refuses it (admission/tokens.yaml), as it does a user named like a
// node outside the nodes' group; a node may, and the exchange takes the
// node's token.
func TestOnlyANodeGetsATokenForTheProviderAudience(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := unique("tokens")
	createNamespace(t, ns, nil)
	tn := tenant(ns, func(t *broker.Tenant) { t.Namespaces = []string{ns} })
	s := startSyncer(t, Config{MarkNamespaces: true})
	publish(t, s, tn, credential("token-"+ns))
	waitForMark(t, ns, tn.ID, "ghcr.io/acme")
	applyPolicy(t, admission.Enforce, ns)
	pod := testenv.PodOfServiceAccount(t, admin, ns, "app", "app-1")

	hostile := userClient(t, "namespace-admin-"+ns, ns, testenv.Everything)
	request := func(client kubernetes.Interface, audience string) (string, error) {
		tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:      []string{audience},
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return tr.Status.Token, nil
	}
	// The policy takes effect once the API server's policy cache has it.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, err := request(hostile, admission.ProviderAudience)
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), admission.TokensName) && strings.Contains(err.Error(), "only a node may request"),
			fmt.Sprintf("the namespace admin's TokenRequest for the provider audience: %v", err)
	})
	// A user with every verb cluster-wide, named like a node but neither in
	// system:nodes nor in system:masters.
	namedLikeANode := userClient(t, "system:node:namespace-admin-"+ns, "", testenv.Everything)
	if _, err := request(namedLikeANode, admission.ProviderAudience); !apierrors.IsForbidden(err) {
		t.Errorf("a user named like a node, outside system:nodes, got a provider token: %v", err)
	}
	if _, err := request(hostile, "vault"); err != nil {
		t.Errorf("a token for another audience: %v", err)
	}
	token, err := request(controlPlane.Node(t, "node-"+ns, admission.ProviderAudience), admission.ProviderAudience)
	if err != nil {
		t.Fatalf("the node's TokenRequest: %v", err)
	}
	tokens := auth.NewPodTokens(TokenReviewer(brokerClient(t), admission.ProviderAudience),
		auth.TokenChecks{Audience: admission.ProviderAudience, Keys: auth.NewServiceAccountKeys(ServiceAccountIssuer(brokerClient(t)), nil)})
	if got, err := tokens.PodOf(ctx, token); err != nil || got.Namespace != ns || got.Pod != pod.Name {
		t.Errorf("the exchange of the node's token: %+v %v", got, err)
	}
}

// countingReviews counts the TokenReviews review makes: each is one
// request to the API server.
func countingReviews(review auth.ReviewFunc, n *atomic.Int64) auth.ReviewFunc {
	return func(ctx context.Context, token string) (auth.Review, error) {
		n.Add(1)
		return review(ctx, token)
	}
}

// forgeries are n tokens nobody issued, as a flood brings them: half
// made-up strings, half JWTs with the cluster's issuer, the provider's
// audience and a Pod binding, signed by the attacker's own key.
func forgeries(t *testing.T, issuer string, n int) []string {
	t.Helper()
	key := authtest.NewKey(t)
	out := make([]string, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = fmt.Sprintf("made-up-%d", i)
			continue
		}
		out[i] = authtest.SignedTokenWithKeyID(t, key, fmt.Sprint("forged-", i), map[string]any{"iss": issuer, "aud": []string{admission.ProviderAudience},
			"sub": "system:serviceaccount:web:app", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
			"kubernetes.io": map[string]any{"namespace": "web", "serviceaccount": map[string]any{"name": "app"}, "pod": map[string]any{"name": "app-1", "uid": "x"}}})
	}
	return out
}

// The attacker of issue 30, hole 4, against the real API server: 1,000
// forged tokens from one address, 16 at a time, while a real Pod's token
// is exchanged. Before, each forgery not cached cost a TokenReview until
// the shared budget ran out and the real token was refused as busy; now
// none costs a review, each is refused TOKEN_REJECTED, and the real token
// is served. The API's TokenReview authenticator is held to the same.
func TestAFloodOfForgedTokensCostsTheAPIServerNoTokenReview(t *testing.T) {
	requireCluster(t)
	ns := unique("flood")
	createNamespace(t, ns, nil)
	pod := testenv.PodOfServiceAccount(t, admin, ns, "app", "app-1")
	real := testenv.ServiceAccountToken(t, admin, pod, admission.ProviderAudience, true)
	issuer, err := ServiceAccountIssuer(brokerClient(t))(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	flood := forgeries(t, issuer.URL, 1000)
	keys := auth.NewServiceAccountKeys(ServiceAccountIssuer(brokerClient(t)), nil)
	checks := auth.TokenChecks{Audience: admission.ProviderAudience, Keys: keys, PerPeer: auth.DefaultPeerReviews}

	var reviews atomic.Int64
	tokens := auth.NewPodTokens(countingReviews(TokenReviewer(brokerClient(t), admission.ProviderAudience), &reviews), checks)
	attacker := auth.WithPeer(context.Background(), "10.0.0.66")
	var rejected, other atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			<-start
			for i := w; i < len(flood); i += 16 {
				_, err := tokens.PodOf(attacker, flood[i])
				var d *broker.DeniedError
				if errors.As(err, &d) && d.Denial == broker.DenyTokenRejected {
					rejected.Add(1)
				} else {
					other.Add(1)
				}
			}
		})
	}
	began := time.Now()
	close(start)
	got, err := tokens.PodOf(auth.WithPeer(context.Background(), "10.0.0.1"), real)
	took := time.Since(began)
	wg.Wait()
	floodTook := time.Since(began)
	if err != nil || got.Pod != pod.Name {
		t.Errorf("the real Pod's token during the flood: %+v %v", got, err)
	}
	if rejected.Load() != int64(len(flood)) {
		t.Errorf("%d of %d forged tokens refused TOKEN_REJECTED, %d otherwise", rejected.Load(), len(flood), other.Load())
	}
	// One review: the real token's (its Pod existing is the API server's
	// to say).
	if n := reviews.Load(); n > 1 {
		t.Errorf("%d TokenReviews for 1,000 forged tokens and one real one, want 1", n)
	}
	t.Logf("exchange: 1,000 forged tokens in %s: %d TokenReviews in all, %d refused TOKEN_REJECTED; the real Pod's token served in %s",
		floodTook.Round(time.Millisecond), reviews.Load(), rejected.Load(), took.Round(time.Millisecond))

	// The API's authenticator (--auth-token-review) on the same flood.
	var apiReviews atomic.Int64
	api := auth.NewServiceAccountTokenReview(countingReviews(TokenReviewer(brokerClient(t), admission.ProviderAudience), &apiReviews), 10*time.Second, checks)
	busy := 0
	for _, token := range flood {
		if _, err := (auth.Chain{api}).Authenticate(context.Background(), auth.Request{BearerToken: token, Peer: "10.0.0.66"}); errors.Is(err, auth.ErrBusy) {
			busy++
		}
	}
	if id, err := (auth.Chain{api}).Authenticate(context.Background(), auth.Request{BearerToken: real, Peer: "10.0.0.1"}); err != nil || id.Name != "system:serviceaccount:"+ns+":app" {
		t.Errorf("the API's authenticator after the flood: %+v %v", id, err)
	}
	if n := apiReviews.Load(); n > 1 || busy > 0 {
		t.Errorf("the API's authenticator: %d TokenReviews and %d refused as busy for 1,000 forged tokens, want none but the real one's", n, busy)
	}
	t.Logf("API authenticator: 1,000 forged tokens: %d TokenReviews in all (with the real one's), %d refused as busy", apiReviews.Load(), busy)
}
