package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// gated is a testing.TB that records how the gate ended a test.
type gated struct {
	testing.TB
	skipped, failed string
}

func (g *gated) Helper() {}
func (g *gated) Skipf(format string, args ...any) {
	g.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (g *gated) Fatal(args ...any) {
	g.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestAMissingAssetFailsUnlessTheRunIsQuick(t *testing.T) {
	assets := t.TempDir()
	for _, f := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if err := os.WriteFile(filepath.Join(assets, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, assets, quick string
		wantFailed          []string
		wantSkipped         string
	}{
		{"unset", "", "", []string{"kube-apiserver and etcd not found", "KUBEBUILDER_ASSETS is not set", "make testbin", "CREDBROKER_QUICK=1"}, ""},
		{"naming nothing", "/nowhere", "", []string{"KUBEBUILDER_ASSETS=/nowhere has no /nowhere/kube-apiserver", "make testbin"}, ""},
		{"unset in a quick run", "", "1", nil, "kube-apiserver and etcd not found (CREDBROKER_QUICK=1: skipped)"},
		{"unset with the switch off", "", "0", []string{"KUBEBUILDER_ASSETS is not set"}, ""},
		{"there", assets, "", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(AssetsEnv, tc.assets)
			t.Setenv(QuickEnv, tc.quick)
			g := &gated{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Require(g, AssetsEnv)
			}()
			<-done
			if g.skipped != tc.wantSkipped {
				t.Errorf("skipped with %q, want %q", g.skipped, tc.wantSkipped)
			}
			for _, want := range tc.wantFailed {
				if !strings.Contains(g.failed, want) {
					t.Errorf("failed with %q, want it to say %q", g.failed, want)
				}
			}
			if tc.wantFailed == nil && g.failed != "" {
				t.Errorf("failed with %q, want no failure", g.failed)
			}
		})
	}
}
