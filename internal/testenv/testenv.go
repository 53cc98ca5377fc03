// Package testenv is credbroker's one place for test support: the one gate
// for a missing asset (fail, or skip in a quick run: gate.go), the real
// control plane (kube-apiserver + etcd from KUBEBUILDER_ASSETS), waiting for
// a condition, and building and running the project's binaries.
package testenv

import (
	"fmt"
	"testing"
	"time"
)

// Eventually polls cond until it holds, and fails the test with cond's
// explanation when it still does not after within. The interval is short:
// conditions are cheap reads of caches, APIs or logs.
func Eventually(t testing.TB, within time.Duration, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Holds is a condition for Eventually that explains itself with what.
func Holds(what string, cond func() bool) func() (bool, string) {
	return func() (bool, string) { return cond(), what }
}

// Errorf formats an explanation for Eventually.
func Errorf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
