package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/internal/testenv"
)

// The side-by-side of `make bench` (CREDBROKER_ESO=<the directory
// hack/eso.sh prints>): External Secrets Operator's GitHub generator and
// credbroker doing the same job — a pull Secret from one App installation in
// each of N namespaces, kept fresh — one after the other against one
// kube-apiserver and the GitHub emulator, with the same token lifetime.
// Each runs as a process of its own on the second CPU; this process (the
// emulator, the watch), kube-apiserver and etcd keep the first.
//
// ESO is set up as its documentation says (docs/api/generator/github.md):
// in every namespace the App's private key in a Secret, a GithubAccessToken
// generator, and an ExternalSecret refreshed at half the token lifetime (its
// example: 30 minutes for GitHub's 60), templated into a
// kubernetes.io/dockerconfigjson Secret. credbroker: tenants of ten
// namespaces on the same installation, the App key in one file. Both at
// their default client limits (50 QPS) and defaults otherwise.
// CREDBROKER_SIDE_BY_SIDE_ONLY=<namespaces> runs one size.

// sideBySideSizes are the sizes measured and the token lifetime of each:
// the lifetime is shortened so that a run takes minutes, and long enough
// that ESO, which refreshes every ExternalSecret twice per lifetime, keeps
// up (one reconcile at a time, ≈ 10 a second here).
var sideBySideSizes = []struct {
	namespaces int
	lifetime   time.Duration
}{{100, 2 * time.Minute}, {1000, 5 * time.Minute}}

// sideRow is one tool's figures at one size.
type sideRow struct {
	tool       string
	namespaces int
	lifetime   time.Duration
	// toAll is from the first registration until every namespace holds a
	// Secret; firstMints and firstWrites are the mints and API-server writes
	// until then.
	toAll       time.Duration
	firstMints  float64
	firstWrites writeCounts
	// In the lifetime that follows.
	mints  float64
	writes writeCounts
	usage  testenv.Usage
	pinned bool
	load   string
}

// contender is one of the tools compared.
type contender struct {
	name string
	// prefix begins the names of its namespaces; selector picks the pull
	// Secrets it writes.
	prefix, selector string
	// setup prepares the namespaces before the clock starts (nil: nothing).
	setup func(t *testing.T, namespaces []string)
	// start runs it, pinned to the second CPU, and waits until it serves.
	start func(t *testing.T) (p *testenv.Process, pinned bool)
	// register hands it the namespaces, as a platform would.
	register func(t *testing.T, namespaces []string)
}

func TestSideBySideWithESO(t *testing.T) {
	esoDir := os.Getenv("CREDBROKER_ESO")
	if esoDir == "" {
		t.Skip("the side-by-side with External Secrets Operator runs with make bench (CREDBROKER_ESO=$(hack/eso.sh))")
	}
	testenv.Require(t, testenv.AssetsEnv)
	sizes := sideBySideSizes
	if only := os.Getenv("CREDBROKER_SIDE_BY_SIDE_ONLY"); only != "" {
		n, err := strconv.Atoi(only)
		if err != nil {
			t.Fatal(err)
		}
		sizes = sizes[:0:0]
		for _, s := range sideBySideSizes {
			if s.namespaces == n {
				sizes = append(sizes, s)
			}
		}
		if len(sizes) == 0 {
			t.Fatalf("CREDBROKER_SIDE_BY_SIDE_ONLY=%d: no such size", n)
		}
	}
	var rows []sideRow
	for _, size := range sizes {
		t.Run(fmt.Sprintf("%d namespaces", size.namespaces), func(t *testing.T) {
			rows = append(rows, sideBySide(t, esoDir, size.namespaces, size.lifetime)...)
		})
	}
	t.Log(sideBySideTable(rows))
}

func sideBySide(t *testing.T, esoDir string, n int, lifetime time.Duration) []sideRow {
	ctx := t.Context()
	cp := testenv.Cluster(t)
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(esoDir, "crds")}}); err != nil {
		t.Fatalf("install ESO's CRDs: %v", err)
	}
	gh, fx, err := emulator.NewDemo()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	gh.SetTokenLifetime(lifetime)
	keyPEM := pemOf(fx.AppKey)
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	apiURL := strings.TrimSuffix(gh.URL(), "/")

	eso := contender{
		name:     "External Secrets Operator v0.20.4",
		prefix:   "eso",
		selector: "bench.credbroker.io/tool=eso",
		setup: func(t *testing.T, namespaces []string) {
			// The App key and the generator in every namespace.
			inParallel(t, namespaces, func(ns string) error {
				if _, err := cp.Admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "github-app-pem"},
					Data: map[string][]byte{"key": keyPEM}}, metav1.CreateOptions{}); err != nil {
					return err
				}
				return createErr(ctx, dyn, ns, esoGenerator(apiURL, fx.AppID, fx.InstallationID))
			})
		},
		start: func(t *testing.T) (*testenv.Process, bool) {
			live := freeAddr(t)
			cmd, pinned := testenv.Pinned("1", filepath.Join(esoDir, "external-secrets"),
				"--metrics-addr", freeAddr(t), "--live-addr", live, "--loglevel", "error")
			cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig(t, "external-secrets"))
			p := testenv.Start(t, "external-secrets", cmd)
			awaitOK(t, "http://"+live+"/healthz")
			return p, pinned
		},
		register: func(t *testing.T, namespaces []string) {
			inParallel(t, namespaces, func(ns string) error {
				return createErr(ctx, dyn, ns, esoExternalSecret(lifetime/2))
			})
		},
	}

	dir := t.TempDir()
	const token = "bench-admin"
	for name, content := range map[string]string{
		"app.pem":     string(keyPEM),
		"tokens.yaml": fmt.Sprintf("tokens:\n  - name: backend\n    sha256: %s\n    roles: [admin]\n", auth.TokenHash(token)),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var baseURL string
	credbroker := contender{
		name:     "credbroker",
		prefix:   "cb",
		selector: credbrokerSecrets,
		start: func(t *testing.T) (*testenv.Process, bool) {
			grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
			cmd, pinned := testenv.Pinned("1", testenv.Build(t, "../cmd/credbroker"), "serve",
				"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--data-dir", filepath.Join(dir, "data"),
				"--kubeconfig", cp.Kubeconfig(t, "credbroker"), "--leader-elect=false",
				"--github-url", gh.URL(), "--github-app-id", fmt.Sprint(fx.AppID), "--github-app-key-file", filepath.Join(dir, "app.pem"),
				"--auth-token-file", filepath.Join(dir, "tokens.yaml"))
			p := testenv.Start(t, "credbroker", cmd)
			baseURL = "http://" + httpAddr
			awaitOK(t, baseURL+"/readyz")
			return p, pinned
		},
		register: func(t *testing.T, namespaces []string) {
			var tenants []string
			for i := 0; i < len(namespaces); i += 10 {
				nss := namespaces[i:min(i+10, len(namespaces))]
				tenants = append(tenants, fmt.Sprintf(`{"id":"t%04d","owner":{"login":%q,"id":"%d","type":"OWNER_TYPE_ORGANIZATION"},"githubApp":{"installationId":"%d"},"namespaces":["%s"]}`,
					i/10, fx.Org.Login, fx.Org.ID, fx.InstallationID, strings.Join(nss, `","`)))
			}
			inParallel(t, tenants, func(body string) error {
				return testenv.Call(ctx, http.DefaultClient, http.MethodPost, baseURL+"/v1/tenants", token, body)
			})
		},
	}

	var rows []sideRow
	for _, c := range []contender{eso, credbroker} {
		namespaces := make([]string, n)
		for i := range namespaces {
			namespaces[i] = fmt.Sprintf("%s-%04d", c.prefix, i)
		}
		inParallel(t, namespaces, func(ns string) error {
			_, err := cp.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
		if c.setup != nil {
			c.setup(t, namespaces)
		}
		rows = append(rows, measure(t, c, gh, cp, namespaces, lifetime))
	}
	return rows
}

// measure runs c, registers the namespaces, waits for a Secret in each, and
// then counts what one token lifetime costs.
func measure(t *testing.T, c contender, gh *emulator.Server, cp *testenv.ControlPlane, namespaces []string, lifetime time.Duration) sideRow {
	t.Helper()
	row := sideRow{tool: c.name, namespaces: len(namespaces), lifetime: lifetime}
	watcher := watchSecrets(t, t.Context(), cp.Admin, c.selector)
	p, pinned := c.start(t)
	row.pinned = pinned
	mints := func() float64 { return float64(gh.Calls(emulator.RouteMintToken)) }
	mints0, writes0 := mints(), apiserverWrites(t, cp)
	start := time.Now()
	c.register(t, namespaces)
	row.toAll = watcher.waitAll(t, len(namespaces), "", 15*time.Minute).Sub(start)
	mints1, writes1 := mints(), apiserverWrites(t, cp)
	row.firstMints, row.firstWrites = mints1-mints0, writes1.since(writes0)
	time.Sleep(lifetime) // a measurement window, not a wait for a condition
	row.mints, row.writes = mints()-mints1, apiserverWrites(t, cp).since(writes1)
	// Both hand out what GitHub minted, in the form a kubelet reads.
	minted := gh.Tokens()
	for _, ns := range []string{namespaces[0], namespaces[len(namespaces)-1]} {
		auths, err := pullAuths(t.Context(), cp.Admin, ns, "ghcr-secret")
		if err != nil || !slices.Contains(minted, auths["ghcr.io"].Password) {
			t.Errorf("%s: the pull Secret in %s holds no token the emulator minted (%v)", c.name, ns, err)
		}
	}
	usage, err := p.Usage()
	if err != nil {
		t.Fatal(err)
	}
	row.usage, row.load = usage, testenv.LoadAverage()
	p.Terminate(t)
	return row
}

// apiserverWrites is how many writes (creates, updates, patches, deletes)
// the API server has served, by resource ("externalsecrets/status"), but
// Leases (the API server's own heartbeats).
func apiserverWrites(t *testing.T, cp *testenv.ControlPlane) writeCounts {
	t.Helper()
	counts := writeCounts{}
	apiserverRequestsWhere(t, cp.Admin, func(labels string, v float64) {
		if !strings.Contains(labels, `verb="POST"`) && !strings.Contains(labels, `verb="PUT"`) &&
			!strings.Contains(labels, `verb="PATCH"`) && !strings.Contains(labels, `verb="DELETE"`) && !strings.Contains(labels, `verb="APPLY"`) {
			return
		}
		resource, subresource := label(labels, "resource"), label(labels, "subresource")
		if resource == "leases" {
			return
		}
		if subresource != "" {
			resource += "/" + subresource
		}
		counts[resource] += v
	})
	return counts
}

// label is the value of a Prometheus series' label, "" when it has none.
func label(labels, name string) string {
	_, rest, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(rest, `"`)
	return value
}

// writeCounts are API-server writes by resource.
type writeCounts map[string]float64

func (w writeCounts) total() (sum float64) {
	for _, v := range w {
		sum += v
	}
	return sum
}

// since is w minus an earlier count.
func (w writeCounts) since(before writeCounts) writeCounts {
	d := writeCounts{}
	for r, v := range w {
		if v -= before[r]; v != 0 {
			d[r] = v
		}
	}
	return d
}

// String lists the resources, most written first: "secrets 200, externalsecrets/status 400".
func (w writeCounts) String() string {
	resources := slices.SortedFunc(maps.Keys(w), func(a, b string) int { return cmp.Or(cmp.Compare(w[b], w[a]), strings.Compare(a, b)) })
	parts := make([]string, len(resources))
	for i, r := range resources {
		parts[i] = fmt.Sprintf("%s %.0f", r, w[r])
	}
	return strings.Join(parts, ", ")
}

// esoGenerator is ESO's GithubAccessToken generator for the installation.
func esoGenerator(apiURL string, appID, installationID int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GithubAccessToken",
		"metadata": map[string]any{"name": "ghcr"},
		"spec": map[string]any{
			"url": apiURL, "appID": strconv.FormatInt(appID, 10), "installID": strconv.FormatInt(installationID, 10),
			"auth": map[string]any{"privateKey": map[string]any{"secretRef": map[string]any{"name": "github-app-pem", "key": "key"}}},
		},
	}}
}

// esoExternalSecret is the ExternalSecret that turns the generator's token
// into the pull Secret credbroker would write.
func esoExternalSecret(refresh time.Duration) *unstructured.Unstructured {
	const config = `{"auths":{"ghcr.io":{"username":"x-access-token","password":"{{ .token }}","auth":"{{ printf "x-access-token:%s" .token | b64enc }}"}}}`
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
		"metadata": map[string]any{"name": "ghcr"},
		"spec": map[string]any{
			"refreshInterval": refresh.String(),
			"dataFrom": []any{map[string]any{"sourceRef": map[string]any{"generatorRef": map[string]any{
				"apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "GithubAccessToken", "name": "ghcr"}}}},
			"target": map[string]any{
				"name": "ghcr-secret",
				"template": map[string]any{
					"type":     string(corev1.SecretTypeDockerConfigJson),
					"metadata": map[string]any{"labels": map[string]any{"bench.credbroker.io/tool": "eso"}},
					"data":     map[string]any{corev1.DockerConfigJsonKey: config},
				},
			},
		},
	}}
}

var esoResources = map[string]schema.GroupVersionResource{
	"GithubAccessToken": {Group: "generators.external-secrets.io", Version: "v1alpha1", Resource: "githubaccesstokens"},
	"ExternalSecret":    {Group: "external-secrets.io", Version: "v1", Resource: "externalsecrets"},
}

func createErr(ctx context.Context, dyn dynamic.Interface, ns string, obj *unstructured.Unstructured) error {
	_, err := dyn.Resource(esoResources[obj.GetKind()]).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create %s in %s: %w", obj.GetKind(), ns, err)
	}
	return nil
}

// inParallel calls do for each item, sixteen at a time, as a platform's
// backend registering many at once would.
func inParallel[T any](t *testing.T, items []T, do func(T) error) {
	t.Helper()
	work := make(chan T)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for item := range work {
				if err := do(item); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// awaitOK waits until url answers 200.
func awaitOK(t *testing.T, url string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, testenv.Holds(url+" did not answer 200", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}))
}

func sideBySideTable(rows []sideRow) string {
	var b strings.Builder
	b.WriteString("\nSide by side: one App installation, N namespaces, each tool a process of its own")
	if len(rows) > 0 && rows[0].pinned {
		b.WriteString(" on CPU 1 (taskset; kube-apiserver, etcd, the emulator and this harness on CPU 0)")
	}
	b.WriteString(". Per lifetime: in the token lifetime after every namespace held a Secret. API-server writes: every create, update, patch and delete but Leases.\n\n")
	b.WriteString("| N | token lifetime | tool | time to all Secrets | mints until then | API-server writes until then | mints / lifetime | Secret writes / lifetime | API-server writes / lifetime | RSS (peak) | CPU | load average at the end |\n")
	b.WriteString("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %v | %s | %v | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f MB (%.0f MB) | %.1f s | %s |\n",
			r.namespaces, r.lifetime, r.tool, r.toAll.Round(100*time.Millisecond), r.firstMints, r.firstWrites.total(),
			r.mints, r.writes["secrets"], r.writes.total(), float64(r.usage.RSS)/1e6, float64(r.usage.PeakRSS)/1e6, r.usage.CPU.Seconds(), r.load)
	}
	b.WriteString("\nAPI-server writes by resource:\n\n| N | tool | until every namespace held a Secret | in the lifetime after |\n| ---: | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %v | %v |\n", r.namespaces, r.tool, r.firstWrites, r.writes)
	}
	return b.String()
}
