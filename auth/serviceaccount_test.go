package auth_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/auth/authtest"
	"github.com/credbroker/credbroker/broker"
)

// cluster is an API server's ServiceAccount issuer as credbroker sees it:
// its keys (changeable, for a rotation), how often they were fetched, and
// the TokenReviews it was asked for.
type cluster struct {
	issuer string
	mu     sync.Mutex
	keys   []*rsa.PrivateKey
	down   bool

	fetches atomic.Int32
	reviews atomic.Int32
	gone    sync.Map // tokens whose Pod was deleted
}

func newCluster(t *testing.T) *cluster {
	return &cluster{issuer: "https://kubernetes.default.svc.cluster.local", keys: []*rsa.PrivateKey{authtest.NewKey(t)}}
}

func (c *cluster) source(context.Context) (auth.Issuer, error) {
	c.fetches.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return auth.Issuer{}, errors.New("403 Forbidden")
	}
	var set jose.JSONWebKeySet
	for _, k := range c.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kidOf(k), Algorithm: "RS256", Use: "sig"})
	}
	raw, err := json.Marshal(set)
	return auth.Issuer{URL: c.issuer, JWKS: raw}, err
}

// review is the API server's TokenReview: it accepts what its keys signed
// for the audience, while the Pod exists.
func (c *cluster) review(keys *auth.ServiceAccountKeys) auth.ReviewFunc {
	return func(ctx context.Context, token string) (auth.Review, error) {
		c.reviews.Add(1)
		if _, gone := c.gone.Load(token); gone {
			return auth.Review{}, nil
		}
		claims, err := keys.Verify(ctx, token, "credbroker")
		if err != nil {
			return auth.Review{}, nil
		}
		extra := map[string][]string{}
		if claims.Pod != "" {
			extra["authentication.kubernetes.io/pod-name"] = []string{claims.Pod}
			extra["authentication.kubernetes.io/pod-uid"] = []string{claims.PodUID}
			extra["authentication.kubernetes.io/node-name"] = []string{claims.Node}
		}
		return auth.Review{Authenticated: true, User: "system:serviceaccount:" + claims.Namespace + ":" + claims.ServiceAccount, Extra: extra}, nil
	}
}

// kidOf names a key as the API server does, by a digest of it.
func kidOf(k *rsa.PrivateKey) string { return fmt.Sprintf("%x", k.N.Bytes()[:8]) }

// token is a ServiceAccount token as the API server issues it for the
// kubelet: signed by key, bound to a Pod.
func (c *cluster) token(t *testing.T, key *rsa.PrivateKey, change func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{"iss": c.issuer, "aud": []string{"credbroker"}, "sub": "system:serviceaccount:web:app",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "nbf": time.Now().Unix(),
		"kubernetes.io": map[string]any{"namespace": "web", "serviceaccount": map[string]any{"name": "app", "uid": "sa-1"},
			"pod": map[string]any{"name": "app-1", "uid": "pod-1"}, "node": map[string]any{"name": "node-a", "uid": "node-1"}}}
	if change != nil {
		change(claims)
	}
	return authtest.SignedTokenWithKeyID(t, key, kidOf(key), claims)
}

func denialOf(err error) broker.ExchangeDenial {
	if err == nil {
		return ""
	}
	var d *broker.DeniedError
	if errors.As(err, &d) {
		return d.Denial
	}
	if errors.Is(err, broker.ErrUnavailable) {
		return "UNAVAILABLE"
	}
	return broker.ExchangeDenial(fmt.Sprint(err))
}

// What cannot be the cluster's ServiceAccount token for the audience is
// refused without a TokenReview; a real one is reviewed once (its Pod
// still existing is what only the API server knows).
func TestPodTokensRefuseWhatIsNotTheClustersWithoutAReview(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	keys := auth.NewServiceAccountKeys(c.source, nil)
	tokens := auth.NewPodTokens(c.review(keys), auth.TokenChecks{Audience: "credbroker", Keys: keys, PerPeer: auth.DefaultPeerReviews})
	stranger := authtest.NewKey(t)
	tests := []struct {
		name    string
		token   string
		want    broker.ExchangeDenial
		reviews int32
	}{
		{"a Pod-bound token of the cluster", c.token(t, c.keys[0], nil), "", 1},
		{"not a JWT", "made-up-token", broker.DenyTokenRejected, 0},
		{"a JWT of garbage", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", broker.DenyTokenRejected, 0},
		{"signed by another key", c.token(t, stranger, nil), broker.DenyTokenRejected, 0},
		{"for another audience", c.token(t, c.keys[0], func(m map[string]any) { m["aud"] = []string{"vault"} }), broker.DenyTokenRejected, 0},
		{"of another issuer", c.token(t, c.keys[0], func(m map[string]any) { m["iss"] = "https://elsewhere.example" }), broker.DenyTokenRejected, 0},
		{"expired", c.token(t, c.keys[0], func(m map[string]any) { m["exp"] = time.Now().Add(-time.Hour).Unix() }), broker.DenyTokenRejected, 0},
		{"bound to no Pod", c.token(t, c.keys[0], func(m map[string]any) {
			m["kubernetes.io"] = map[string]any{"namespace": "web", "serviceaccount": map[string]any{"name": "app"}}
		}), broker.DenyTokenNotPodBound, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := c.reviews.Load()
			pod, err := tokens.PodOf(ctx, tc.token)
			if got := denialOf(err); got != tc.want {
				t.Errorf("denial %q (%v), want %q", got, err, tc.want)
			}
			if tc.want == "" && (pod.Namespace != "web" || pod.Pod != "app-1" || pod.Node != "node-a") {
				t.Errorf("pod %+v", pod)
			}
			if got := c.reviews.Load() - before; got != tc.reviews {
				t.Errorf("%d TokenReviews, want %d", got, tc.reviews)
			}
		})
	}
	if got := c.fetches.Load(); got != 1 {
		t.Errorf("the keys were fetched %d times, want once", got)
	}
}

// The attacker of issue 30 (hole 4): 1,000 made-up tokens from one
// address, some shaped like the cluster's, cost no TokenReview and at most
// one more fetch of the keys; a real Pod's token is still served.
func TestAFloodOfForgedPodTokensCostsTheAPIServerNothing(t *testing.T) {
	ctx := auth.WithPeer(context.Background(), "10.0.0.66")
	c := newCluster(t)
	keys := auth.NewServiceAccountKeys(c.source, nil)
	tokens := auth.NewPodTokens(c.review(keys), auth.TokenChecks{Audience: "credbroker", Keys: keys, PerPeer: auth.DefaultPeerReviews})
	forger := authtest.NewKey(t)
	forged := c.token(t, forger, nil)
	refused := 0
	for i := range 1000 {
		token := fmt.Sprintf("made-up-%d", i)
		if i%2 == 0 {
			token = forged[:len(forged)-8] + fmt.Sprintf("%08d", i) // a signature that is not the key's
		}
		if _, err := tokens.PodOf(ctx, token); denialOf(err) == broker.DenyTokenRejected {
			refused++
		}
	}
	if refused != 1000 || c.reviews.Load() != 0 {
		t.Errorf("%d of 1,000 forged tokens refused, with %d TokenReviews; want all refused and no review", refused, c.reviews.Load())
	}
	if got := c.fetches.Load(); got > 2 {
		t.Errorf("the keys were fetched %d times for the flood, want at most twice", got)
	}
	if pod, err := tokens.PodOf(ctx, c.token(t, c.keys[0], nil)); err != nil || pod.Pod != "app-1" {
		t.Errorf("a real Pod's token during the flood: %+v %v", pod, err)
	}
}

// While the keys cannot be fetched (no RBAC for issuer discovery, say),
// tokens shaped like the cluster's are reviewed, and one address's flood
// spends its own share only: another address's real token is served.
func TestWithoutKeysOneAddressCannotSpendTheReviewBudget(t *testing.T) {
	c := newCluster(t)
	c.down = true
	up := newCluster(t)
	up.keys = c.keys
	verify := auth.NewServiceAccountKeys(up.source, nil) // the API server's own view
	keys := auth.NewServiceAccountKeys(c.source, nil)
	tokens := auth.NewPodTokens(c.review(verify), auth.TokenChecks{Audience: "credbroker", Keys: keys, PerPeer: auth.DefaultPeerReviews})
	attacker := auth.WithPeer(context.Background(), "10.0.0.66")
	forger := authtest.NewKey(t)
	busy := 0
	start := time.Now()
	for i := range 200 {
		token := c.token(t, forger, func(m map[string]any) { m["jti"] = fmt.Sprint(i) })
		if _, err := tokens.PodOf(attacker, token); denialOf(err) == "UNAVAILABLE" {
			busy++
		}
	}
	// Signing the forgeries takes a while, in which the bucket refills.
	limit := auth.DefaultPeerReviews
	if got, most := float64(c.reviews.Load()), float64(limit.Burst)+limit.PerSecond*time.Since(start).Seconds()+1; got > most {
		t.Errorf("%.0f TokenReviews for one address's flood of 200, want at most %.0f (its burst and rate)", got, most)
	}
	if busy == 0 {
		t.Error("the flood was never refused as busy")
	}
	node := auth.WithPeer(context.Background(), "10.0.0.1")
	if pod, err := tokens.PodOf(node, c.token(t, c.keys[0], nil)); err != nil || pod.Pod != "app-1" {
		t.Errorf("another address's real token: %+v %v", pod, err)
	}
}

// A key the cluster adds (a rotation) is fetched when a token names it;
// made-up key ids make the fetch happen at most every 30 s.
func TestTheKeysFollowARotation(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	keys := auth.NewServiceAccountKeys(c.source, clk)
	if _, err := keys.Verify(ctx, c.token(t, c.keys[0], nil), "credbroker"); err != nil {
		t.Fatal(err)
	}
	next := authtest.NewKey(t)
	c.mu.Lock()
	c.keys = []*rsa.PrivateKey{next, c.keys[0]} // the new key is k1 now, the old one k2
	c.mu.Unlock()
	clk.SetTime(clk.Now().Add(31 * time.Second))
	if _, err := keys.Verify(ctx, c.token(t, next, nil), "credbroker"); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
	fetches := c.fetches.Load()
	stranger := authtest.NewKey(t)
	for i := range 100 {
		forged := authtest.SignedTokenWithKeyID(t, stranger, fmt.Sprint("made-up-", i), map[string]any{"iss": c.issuer, "aud": "credbroker"})
		if _, err := keys.Verify(ctx, forged, "credbroker"); !errors.Is(err, auth.ErrTokenRejected) {
			t.Fatalf("a forged token: %v", err)
		}
	}
	if got := c.fetches.Load() - fetches; got != 0 {
		t.Errorf("%d fetches within 30 s of the last", got)
	}
}
