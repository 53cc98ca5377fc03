package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/auth"
)

func TestLimitsThrottleEachCallerAndForgetIdleOnes(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	l := newLimits(clk)
	limit := auth.Limit{PerSecond: 1, Burst: 2}
	const method = "/credbroker.v1.CredentialService/RefreshCredential"
	var got []bool
	for range 3 {
		got = append(got, l.allow(method, "a", limit))
	}
	if !slices.Equal(got, []bool{true, true, false}) {
		t.Fatalf("a burst of 2: calls allowed %v, want two allowed and the third refused", got)
	}
	if !l.allow(method, "b", limit) {
		t.Error("another caller has a bucket of its own")
	}
	if !l.allow("/credbroker.v1.TenantService/GetTenant", "a", auth.Limit{}) {
		t.Error("an unthrottled method was refused")
	}
	for i := range 1000 {
		l.allow(method, fmt.Sprint("caller-", i), limit)
	}
	if got := l.size(); got != 1002 {
		t.Fatalf("%d buckets, want 1002", got)
	}
	// A minute later every bucket is full again: all are dropped, and the
	// caller that exhausted its bucket gets a full one.
	clk.SetTime(clk.Now().Add(pruneEvery))
	if !l.allow(method, "a", limit) || l.size() != 1 {
		t.Errorf("after a quiet minute: %d buckets kept, want only the new one", l.size())
	}
	// A bucket still draining is kept.
	l.allow(method, "a", limit)
	l.allow(method, "a", limit)
	clk.SetTime(clk.Now().Add(pruneEvery))
	l.allow(method, "c", auth.Limit{PerSecond: 0.001, Burst: 1})
	clk.SetTime(clk.Now().Add(pruneEvery))
	l.allow(method, "d", limit)
	if l.size() != 2 {
		t.Errorf("%d buckets, want c's (still empty) and d's", l.size())
	}
}
