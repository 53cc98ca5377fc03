package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/refresh"

	"github.com/credbroker/credbroker/internal/testenv/demo"

	"github.com/credbroker/credbroker/internal/testenv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github/emulator"
	"github.com/credbroker/credbroker/k8ssync"
)

// The scale harness: `make bench` (CREDBROKER_SCALE=1). It runs the broker's
// parts in this process — Tenants, Refresher, Syncer, API server — against
// the GitHub emulator and a real kube-apiserver started afresh per size, and
// prints one table. CREDBROKER_SCALE_ONLY=<namespaces> runs one size.

const (
	scaleQPS   = 200
	scaleBurst = 400
	// lateNamespaces are the namespaces of a tenant created during the
	// rotation.
	lateNamespaces = 10
)

// scaleRow is one size's figures.
type scaleRow struct {
	namespaces, tenants           int
	firstMints                    int
	firstPublication              time.Duration
	firstWrites                   int64
	createP50, createP99          time.Duration
	fanOut                        time.Duration
	lateFirst                     time.Duration // create→1st Secret of a tenant created during the rotation
	rotationWrites                int64
	rotationMints                 int
	steadyWrites                  int64
	heapPerBinding, rssPerBinding float64
}

func TestScale(t *testing.T) {
	if os.Getenv("CREDBROKER_SCALE") == "" {
		t.Skip("the scale harness runs with make bench (CREDBROKER_SCALE=1)")
	}
	testenv.Require(t, testenv.AssetsEnv)
	sizes := []int{1, 100, 1000, 10000}
	if only := os.Getenv("CREDBROKER_SCALE_ONLY"); only != "" {
		n, err := strconv.Atoi(only)
		if err != nil {
			t.Fatal(err)
		}
		sizes = []int{n}
	}
	var rows []scaleRow
	var extra []string
	for _, n := range sizes {
		// A subtest a size, so that each size's emulator and store are
		// closed before the next is measured.
		t.Run(fmt.Sprintf("%d namespaces", n), func(t *testing.T) {
			row, notes := scaleRun(t, n)
			rows = append(rows, row)
			extra = append(extra, notes...)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nSyncer client at %d QPS / burst %d; one installation shared by every tenant.\n\n", scaleQPS, scaleBurst)
	b.WriteString("| namespaces | tenants | mints (1st publication) | 1st publication | writes | create→1st Secret p50 / p99 | rotation fan-out | a new tenant's create→1st Secret during it | writes | achieved QPS | mints/rotation | steady writes (10 s) | heap/binding | RSS/binding |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		qps := float64(r.rotationWrites) / r.fanOut.Seconds()
		fmt.Fprintf(&b, "| %d | %d | %d | %v | %d | %v / %v | %v | %v | %d | %.0f | %d | %d | %.1f KiB | %.1f KiB |\n",
			r.namespaces, r.tenants, r.firstMints, r.firstPublication.Round(time.Millisecond), r.firstWrites,
			r.createP50.Round(time.Millisecond), r.createP99.Round(time.Millisecond), r.fanOut.Round(time.Millisecond),
			r.lateFirst.Round(time.Millisecond), r.rotationWrites, qps, r.rotationMints, r.steadyWrites, r.heapPerBinding/1024, r.rssPerBinding/1024)
	}
	for _, note := range extra {
		b.WriteString("\n" + note + "\n")
	}
	t.Log(b.String())
}

// credbrokerSecrets selects the pull Secrets credbroker manages.
const credbrokerSecrets = k8ssync.LabelManagedBy + "=" + k8ssync.ManagedByValue + "," + k8ssync.LabelTenant

// secretWatch follows the pull Secrets a selector picks: when each tenant's
// first arrived, and the fingerprint each namespace's holds now.
type secretWatch struct {
	mu          sync.Mutex
	fingerprint map[string]string    // by namespace
	firstSeen   map[string]time.Time // by tenant
	changed     chan struct{}
}

func watchSecrets(t *testing.T, ctx context.Context, kube kubernetes.Interface, selector string) *secretWatch {
	t.Helper()
	w := &secretWatch{fingerprint: map[string]string{}, firstSeen: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	wi, err := kube.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			sec, ok := ev.Object.(*corev1.Secret)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			now := time.Now()
			w.mu.Lock()
			w.fingerprint[sec.Namespace] = sec.Annotations[k8ssync.AnnotationFingerprint]
			if tenant := sec.Labels[k8ssync.LabelTenant]; w.firstSeen[tenant].IsZero() {
				w.firstSeen[tenant] = now
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// waitAll waits until n namespaces hold a Secret with fingerprint (any, if
// empty) and returns when that happened.
func (w *secretWatch) waitAll(t *testing.T, n int, fingerprint string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.After(within)
	for {
		w.mu.Lock()
		count := 0
		for _, fp := range w.fingerprint {
			if fingerprint == "" || fp == fingerprint {
				count++
			}
		}
		w.mu.Unlock()
		if count >= n {
			return time.Now()
		}
		select {
		case <-w.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after %v: %d of %d namespaces hold fingerprint %q", within, count, n, fingerprint)
		}
	}
}

func memoryNow() (heap, rss float64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			rss = kb * 1024
		}
	}
	return float64(ms.HeapAlloc), rss
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func scaleRun(t *testing.T, namespaces int) (scaleRow, []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tenants := max(1, namespaces/10)
	row := scaleRow{namespaces: namespaces, tenants: tenants}
	log := slog.New(slog.DiscardHandler)

	cp, err := testenv.StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	admin := cp.Admin
	// Setting up namespaces is not what is measured.
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%05d", i)}}, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range namespaces + lateNamespaces {
		work <- i
	}
	close(work)
	wg.Wait()

	d := demo.Start(t)
	gh, fx, client, registry := d.GitHub, d.Fixture, d.Client, d.Registry
	watcher := watchSecrets(t, ctx, admin, credbrokerSecrets)

	heap0, rss0 := memoryNow()
	syncCfg := *cp.Config
	syncCfg.QPS, syncCfg.Burst = scaleQPS, scaleBurst
	kube, err := kubernetes.NewForConfig(&syncCfg)
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := k8ssync.New(kube, k8ssync.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	refresher := refresh.New(refresh.Config{}, registry, client, syncer, log)
	var bg sync.WaitGroup
	bg.Go(func() { _ = syncer.Run(ctx) })
	bg.Go(func() { _ = refresher.Run(ctx) })
	defer bg.Wait()
	defer cancel()

	// Tenants are registered one after another, as a backend would; each is
	// timed from its create to its first Secret.
	start := time.Now()
	created := map[string]time.Time{}
	per := namespaces / tenants
	for i := range tenants {
		var nss []string
		for j := range per {
			nss = append(nss, fmt.Sprintf("ns-%05d", i*per+j))
		}
		id := fmt.Sprintf("t%04d", i)
		created[id] = time.Now()
		if _, _, err := registry.Create(ctx, broker.Tenant{ID: id, Owner: broker.Owner{Login: fx.Org.Login, ID: fx.Org.ID, Type: broker.OwnerOrganization},
			App: &broker.GitHubApp{InstallationID: fx.InstallationID}, Namespaces: nss}); err != nil {
			t.Fatal(err)
		}
	}
	done := watcher.waitAll(t, namespaces, "", 10*time.Minute)
	row.firstPublication = done.Sub(start)
	row.firstMints = gh.Calls(emulator.RouteMintToken)
	waitIdle(syncer, namespaces, 0)
	row.firstWrites = syncer.Writes()
	var lat []time.Duration
	watcher.mu.Lock()
	for id, at := range created {
		lat = append(lat, watcher.firstSeen[id].Sub(at))
	}
	watcher.mu.Unlock()
	row.createP50, row.createP99 = percentile(lat, 0.5), percentile(lat, 0.99)

	// A rotation: one new token, to every namespace; while it fans out, a
	// new tenant arrives, whose first Secrets must not wait for it.
	t0, _ := registry.Get(ctx, "t0000")
	mintsBefore, writesBefore := gh.Calls(emulator.RouteMintToken), syncer.Writes()
	rotateStart := time.Now()
	st := refresher.RenewNow(ctx, t0)
	var late []string
	for i := range lateNamespaces {
		late = append(late, fmt.Sprintf("ns-%05d", namespaces+i))
	}
	lateCreated := time.Now()
	if _, _, err := registry.Create(ctx, broker.Tenant{ID: "late", Owner: broker.Owner{Login: fx.Org.Login, ID: fx.Org.ID, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: fx.InstallationID}, Namespaces: late}); err != nil {
		t.Fatal(err)
	}
	done = watcher.waitAll(t, namespaces+lateNamespaces, st.Fingerprint, 10*time.Minute)
	row.fanOut = done.Sub(rotateStart)
	row.rotationMints = gh.Calls(emulator.RouteMintToken) - mintsBefore
	waitIdle(syncer, namespaces+lateNamespaces, writesBefore)
	row.rotationWrites = syncer.Writes() - writesBefore - lateNamespaces // the new tenant's are its own
	watcher.mu.Lock()
	row.lateFirst = watcher.firstSeen["late"].Sub(lateCreated)
	watcher.mu.Unlock()

	// Steady state: nothing is due, nothing should be written.
	steady := syncer.Writes()
	time.Sleep(10 * time.Second) // a measurement window, not a wait for a condition
	row.steadyWrites = syncer.Writes() - steady

	heap1, rss1 := memoryNow()
	row.heapPerBinding, row.rssPerBinding = (heap1-heap0)/float64(namespaces), (rss1-rss0)/float64(namespaces)
	if path := os.Getenv("CREDBROKER_SCALE_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}

	var notes []string
	if namespaces == 1000 {
		// Every bound namespace, the tenant created during the rotation's too.
		notes = append(notes, compressedClock(t, ctx, gh, syncer, watcher, registry, refresher, namespaces+lateNamespaces)...)
	}
	return row, notes
}

// waitIdle waits until the Syncer has written every namespace of a rotation
// (its counter lags the API server's watch by a moment).
func waitIdle(s *k8ssync.Syncer, namespaces int, before int64) {
	deadline := time.Now().Add(30 * time.Second)
	for s.Writes()-before < int64(namespaces) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// compressedClock lets 30-second tokens expire on the Refresher's own
// schedule for three lifetimes and counts mints and writes.
func compressedClock(t *testing.T, ctx context.Context, gh *emulator.Server, syncer *k8ssync.Syncer, watcher *secretWatch,
	registry *broker.Tenants, refresher *refresh.Refresher, namespaces int) []string {
	t.Helper()
	writesBefore := syncer.Writes()
	const lifetime = 30 * time.Second
	gh.SetTokenLifetime(lifetime)
	t0, _ := registry.Get(ctx, "t0000")
	st := refresher.RenewNow(ctx, t0) // a token of the short lifetime; renewals follow by themselves
	watcher.waitAll(t, namespaces, st.Fingerprint, time.Minute)
	waitIdle(syncer, namespaces, writesBefore)
	mints, writes := gh.Calls(emulator.RouteMintToken), syncer.Writes()
	time.Sleep(3 * lifetime) // the measurement window
	m, w := gh.Calls(emulator.RouteMintToken)-mints, syncer.Writes()-writes
	return []string{fmt.Sprintf("Compressed clock (%d namespaces, %v tokens renewed on the Refresher's own schedule for 3 lifetimes): "+
		"%d mints = %.2f per installation per lifetime (renewal at a sixth of the life before expiry: %.2f in the long run), %d Secret writes = %.0f per rotation.",
		namespaces, lifetime, m, float64(m)/3, 1/(1-1.0/6-1.0/120), w, float64(w)/max(1, float64(m)))}
}

// load runs call from 32 goroutines for 3 s and returns req/s, p50, p99.
func load(t *testing.T, call func() error) (float64, time.Duration, time.Duration) {
	t.Helper()
	const workers, window = 32, 3 * time.Second
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	end := time.Now().Add(window)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(end) {
				s := time.Now()
				if err := call(); err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(s))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d calls failed", n)
	}
	return float64(len(lat)) / window.Seconds(), percentile(lat, 0.5).Round(10 * time.Microsecond), percentile(lat, 0.99).Round(10 * time.Microsecond)
}

func writeHeapProfile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}
