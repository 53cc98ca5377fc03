package k8ssync

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/credbroker/credbroker/broker"
)

// BenchmarkRotationFanOut1000 measures one credential rotation reaching
// 1,000 namespaces on a real kube-apiserver, as the credbroker
// ServiceAccount with the default client rate limits (DefaultQPS,
// DefaultBurst). Each iteration publishes a new credential and waits until
// all 1,000 Secrets are written.
func BenchmarkRotationFanOut1000(b *testing.B) {
	requireCluster(b)
	const n = 1000
	label := unique("bench")
	for i := range n {
		createNamespace(b, fmt.Sprintf("%s-%04d", label, i), map[string]string{"bench": label})
	}
	s := startSyncer(b, Config{})
	// A tenant of its own per run: the testing package calls a benchmark
	// more than once, and a tenant shared across runs would be cleaned up
	// by the next run inside its measurement.
	tn := tenant(label, func(t *broker.Tenant) { t.NamespaceSelector = "bench=" + label })
	publish(b, s, tn, credential("ghp_benchwarmup0000000000000000000000000"))
	testenv.Eventually(b, 5*time.Minute, func() (bool, string) { return s.Writes() >= n, fmt.Sprintf("%d of %d written", s.Writes(), n) })

	b.ResetTimer()
	for i := range b.N {
		before := s.Writes()
		publish(b, s, tn, credential(fmt.Sprintf("ghp_bench%031d", i)))
		testenv.Eventually(b, 5*time.Minute, func() (bool, string) {
			return s.Writes()-before >= n, fmt.Sprintf("%d of %d written", s.Writes()-before, n)
		})
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(s.Writes()-n)/float64(b.N), "writes/rotation")
}

// A tenant whose first Secrets are due while another tenant's rotation
// fans out gets them in its own lane: they are written before the rotation
// is half done, not after it. (Rotation at the default client QPS of 50:
// 400 writes take 8 s.)
func TestANewTenantIsNotQueuedBehindARotation(t *testing.T) {
	requireCluster(t)
	const n = 400
	label := unique("fair")
	for i := range n {
		createNamespace(t, fmt.Sprintf("%s-%04d", label, i), map[string]string{"fair": label})
	}
	newcomer := []string{label + "-new-a", label + "-new-b"}
	for _, ns := range newcomer {
		createNamespace(t, ns, nil)
	}
	s := startSyncer(t, Config{})
	big := tenant(label, func(t *broker.Tenant) { t.NamespaceSelector = "fair=" + label })
	publish(t, s, big, credential("ghp_fairfirst00000000000000000000000000"))
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) { return s.Writes() >= n, fmt.Sprintf("%d of %d written", s.Writes(), n) })
	// The start queued every namespace in the cluster, and the first
	// publication queued the tenant's again in the other lane. Whatever of
	// the tenant's is still owed in the first-publication lane when the
	// rotation comes — queued, or waiting out the backoff of a refused
	// create (informer lag under load) — is reconciled against the rotation's
	// credential: rotation writes in the newcomer's lane, ahead of it. (With
	// no wait here, a loaded run had 217 of them queued there, and the
	// newcomer waited for all 400 writes.) So both lanes must owe nothing.
	idle(t, s)

	before := s.Writes()
	publish(t, s, big, credential("ghp_fairrotation0000000000000000000000000"))
	publish(t, s, tenant(label+"-new", func(t *broker.Tenant) { t.Namespaces = newcomer }), credential("ghp_fairnewcomer00000000000000000000000"))
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		_, a := getSecret(t, newcomer[0], "ghcr-secret")
		_, b := getSecret(t, newcomer[1], "ghcr-secret")
		return a && b, "the newcomer's Secrets are not there"
	})
	rotated := s.Writes() - before - 2
	t.Logf("the newcomer's 2 Secrets were written after %d of the rotation's %d", rotated, n)
	if rotated > n/2 {
		t.Errorf("the newcomer waited for %d of the rotation's %d writes", rotated, n)
	}
}

// BenchmarkFanOutAgainstABareClient sets the client's rate limit out of the
// way (10,000 QPS) and compares a rotation reaching 1,000 and 10,000
// namespaces with the ceiling: a bare client-go loop, as many goroutines as
// the Syncer has workers, updating the same Secrets as the same identity.
// It reports both in writes/s and the Syncer's as a fraction of the
// ceiling. Each size's namespaces are created once (b.Loop).
func BenchmarkFanOutAgainstABareClient(b *testing.B) {
	requireCluster(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("%d_namespaces", n), func(b *testing.B) { fanOutAgainstABareClient(b, n) })
	}
}

func fanOutAgainstABareClient(b *testing.B, n int) {
	const qps = 10000
	label := unique("ceiling")
	names := make(chan string, n)
	for i := range n {
		names <- fmt.Sprintf("%s-%05d", label, i)
	}
	close(names)
	var created sync.WaitGroup
	for range 16 {
		created.Go(func() {
			for name := range names {
				createNamespace(b, name, map[string]string{"ceiling": label})
			}
		})
	}
	created.Wait()
	fast := rest.CopyConfig(brokerCfg)
	fast.QPS, fast.Burst = qps, qps
	s := startSyncerAs(b, fast, Config{Workers: WorkersFor(qps)})
	tn := tenant(label, func(t *broker.Tenant) { t.NamespaceSelector = "ceiling=" + label })
	publish(b, s, tn, credential("ghp_ceilingwarmup000000000000000000000"))
	testenv.Eventually(b, 5*time.Minute, func() (bool, string) { return s.Writes() >= int64(n), fmt.Sprintf("%d of %d written", s.Writes(), n) })

	client, err := kubernetes.NewForConfig(fast)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// The bare loop, like the Syncer with its informer, reads nothing while
	// it writes: the Secrets are listed before the clock starts.
	bare := func(round int) time.Duration {
		list, err := admin.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: LabelTenant + "=" + label})
		if err != nil || len(list.Items) != n {
			b.Fatalf("list the Secrets: %d, %v", len(list.Items), err)
		}
		start := time.Now()
		secrets := make(chan *corev1.Secret, n)
		for i := range list.Items {
			secrets <- &list.Items[i]
		}
		close(secrets)
		var wg sync.WaitGroup
		for range WorkersFor(qps) {
			wg.Go(func() {
				for sec := range secrets {
					sec.Annotations["bench.credbroker.io/round"] = fmt.Sprint(round)
					if _, err := client.CoreV1().Secrets(sec.Namespace).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var syncer, ceiling time.Duration
	rounds := 0
	for b.Loop() {
		before, start := s.Writes(), time.Now()
		publish(b, s, tn, credential(fmt.Sprintf("ghp_ceiling%029d", rounds)))
		testenv.Eventually(b, 5*time.Minute, func() (bool, string) {
			return s.Writes()-before >= int64(n), fmt.Sprintf("%d of %d written", s.Writes()-before, n)
		})
		syncer += time.Since(start)
		ceiling += bare(rounds)
		rounds++
	}
	b.ReportMetric(float64(n*rounds)/syncer.Seconds(), "syncer-writes/s")
	b.ReportMetric(float64(n*rounds)/ceiling.Seconds(), "bare-writes/s")
	b.ReportMetric(ceiling.Seconds()/syncer.Seconds(), "fraction")
}
