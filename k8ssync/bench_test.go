package k8ssync

import (
	"fmt"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"

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
