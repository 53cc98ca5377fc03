package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/internal/testenv"
)

// apiserverRequests sums the API server's apiserver_request_total over the
// series whose labels contain every one of want (`resource="secrets"`).
func apiserverRequests(t *testing.T, kube kubernetes.Interface, want ...string) float64 {
	t.Helper()
	var sum float64
	apiserverRequestsWhere(t, kube, func(labels string, v float64) {
		for _, w := range want {
			if !strings.Contains(labels, w) {
				return
			}
		}
		sum += v
	})
	return sum
}

// apiserverRequestsWhere calls each with the labels ("{code=…,verb=…}") and
// value of every apiserver_request_total series.
func apiserverRequestsWhere(t *testing.T, kube kubernetes.Interface, each func(labels string, v float64)) {
	t.Helper()
	raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		series, ok := strings.CutPrefix(sc.Text(), "apiserver_request_total")
		if !ok || !strings.HasPrefix(series, "{") {
			continue
		}
		space := strings.LastIndexByte(series, ' ')
		if v, err := strconv.ParseFloat(series[space+1:], 64); err == nil {
			each(series[:space], v)
		}
	}
}

// TestAFloodCostsNeitherTheLeaseNorTheAPIServer floods the binary with
// 2,000 requests a second for 10 s, each with a made-up bearer token, and
// checks that the leader keeps renewing its Lease throughout (leader
// election has a client and budget of its own) and that the API server
// sees no TokenReview: a token that cannot be the cluster's is refused
// before any. Then ValidatePod at its allowed rate, with the Kubernetes store,
// reads no tenant Secret from the API server: tenants come from a cache.
func TestAFloodCostsNeitherTheLeaseNorTheAPIServer(t *testing.T) {
	testenv.Require(t, testenv.AssetsEnv)
	ctx := context.Background()
	dir := t.TempDir()
	fx, _ := startEmulator(t, testenv.Build(t, "./githubemu"))
	cp := testenv.Cluster(t, "credbroker", "shop")
	kube := cp.Admin
	const token = "flood-admin"
	for name, content := range map[string]string{
		"app.pem":     fx.AppKeyPEM,
		"tokens.yaml": fmt.Sprintf("tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(token)),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, httpAddr := startBroker(t, testenv.Build(t, "../cmd/credbroker"), "--data-dir", filepath.Join(dir, "data"),
		"--kubeconfig", cp.Kubeconfig(t, "credbroker-flood"), "--store", "kubernetes", "--namespace", "credbroker", "--identity", "replica-1",
		"--github-url", fx.APIURL, "--github-app-id", fmt.Sprint(fx.AppID), "--github-app-key-file", filepath.Join(dir, "app.pem"),
		"--auth-token-file", filepath.Join(dir, "tokens.yaml"), "--auth-token-review")
	baseURL := "http://" + httpAddr
	shop := fmt.Sprintf(`{"id":"shop","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},"namespaces":["shop"]}`,
		fx.AppOwner, fx.AppOwnerID, fx.InstallationID)
	if code, body := testenv.REST(t, http.MethodPost, baseURL+"/v1/tenants", token, shop); code != http.StatusOK {
		t.Fatalf("create tenant: %d %s", code, body)
	}
	image := fmt.Sprintf(`{"podSpec":{"containers":[{"name":"app","image":"ghcr.io/%s/app:1"}]}}`, fx.AppOwner)
	leaseHeld := func() (time.Time, error) {
		l, err := kube.CoordinationV1().Leases("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
		if err != nil {
			return time.Time{}, err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "replica-1" || l.Spec.RenewTime == nil {
			return time.Time{}, fmt.Errorf("lease held by %v", l.Spec.HolderIdentity)
		}
		return l.Spec.RenewTime.Time, nil
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, err := leaseHeld()
		return err == nil, fmt.Sprint(err)
	})

	reviewsBefore := apiserverRequests(t, kube, `resource="tokenreviews"`)
	const perSecond, duration = 2000, 10 * time.Second
	limiter := rate.NewLimiter(perSecond, 50)
	floodCtx, stop := context.WithTimeout(ctx, duration)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := 0; limiter.Wait(floodCtx) == nil; i++ {
				req, _ := http.NewRequest(http.MethodGet, baseURL+"/v1/tenants", nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer made-up-%d-%d", w, i))
				code := 0
				if resp, err := client.Do(req); err == nil {
					code = resp.StatusCode
					_ = resp.Body.Close()
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	// The Lease is renewed every 2 s (RetryPeriod) throughout.
	var renewals []time.Time
	start := time.Now()
	for time.Since(start) < duration {
		renewed, err := leaseHeld()
		if err != nil {
			t.Errorf("during the flood: %v", err)
		} else if len(renewals) == 0 || renewed.After(renewals[len(renewals)-1]) {
			renewals = append(renewals, renewed)
		}
		time.Sleep(500 * time.Millisecond)
	}
	wg.Wait()
	total := 0
	for _, n := range codes {
		total += n
	}
	reviews := apiserverRequests(t, kube, `resource="tokenreviews"`) - reviewsBefore
	t.Logf("flood: %d requests in %v (%.0f/s), answers %v; %.0f TokenReviews reached the API server; the Lease was renewed %d times",
		total, duration, float64(total)/duration.Seconds(), codes, reviews, len(renewals))
	// The review budget: auth.ReviewsPerSecond for the duration, the burst,
	// and 20 of slack. The flood must dwarf it (how far the client gets
	// toward perSecond depends on the machine: 1,000–1,600/s on two shared
	// cores with the race detector).
	budget := auth.ReviewsPerSecond*duration.Seconds() + auth.ReviewBurst + 20
	if float64(total) < 20*budget {
		t.Errorf("only %d requests sent, want at least 20 times the review budget (%.0f): the flood was not a flood", total, budget)
	}
	if codes[http.StatusOK] != 0 || codes[0] > total/100 {
		t.Errorf("answers %v: made-up tokens must be refused (401/503), and answered", codes)
	}
	// None of them could be a ServiceAccount token of the cluster (issue
	// 30, hole 4): refused before any review, not only within its budget.
	if reviews > 0 {
		t.Errorf("%.0f TokenReviews reached the API server for made-up tokens, want none (the review budget would allow %.0f)", reviews, budget)
	}
	if len(renewals) < 4 {
		t.Errorf("the Lease was renewed %d times in %v, want one every ~2 s", len(renewals), duration)
	}

	// ValidatePod at its allowed rate reads no tenant from the API server.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		code, _ := testenv.REST(t, http.MethodPost, baseURL+"/v1/tenants/shop/pods:validate", token, image)
		return code == http.StatusOK, fmt.Sprintf("ValidatePod: %d", code)
	})
	getsBefore := apiserverRequests(t, kube, `resource="secrets"`, `verb="GET"`)
	podLimiter := rate.NewLimiter(200, 1)
	for range 400 {
		if err := podLimiter.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		code, body := testenv.REST(t, http.MethodPost, baseURL+"/v1/tenants/shop/pods:validate", token, image)
		if code != http.StatusOK {
			t.Fatalf("ValidatePod: %d %s", code, body)
		}
	}
	if gets := apiserverRequests(t, kube, `resource="secrets"`, `verb="GET"`) - getsBefore; gets != 0 {
		t.Errorf("400 ValidatePod calls made %.0f Secret GETs at the API server, want 0 (tenants from the cache)", gets)
	}
}
