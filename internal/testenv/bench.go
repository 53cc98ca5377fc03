package testenv

import (
	"slices"
	"testing"
	"time"
)

// ParallelLatencies runs call from b.RunParallel's goroutines (parallelism
// per GOMAXPROCS), timing every call, and reports their p50 and p99 in
// microseconds beside ns/op (whose inverse is the throughput).
func ParallelLatencies(b *testing.B, parallelism int, call func() error) {
	b.Helper()
	latencies := make(chan []time.Duration, 256)
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		defer func() { latencies <- mine }()
		for pb.Next() {
			start := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
	})
	b.StopTimer()
	close(latencies)
	var all []time.Duration
	for l := range latencies {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
}
