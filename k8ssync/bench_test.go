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
