package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// QuickEnv is the one switch that lets tests skip when what they need is
// missing: CREDBROKER_QUICK=1 go test ./... is a developer's quick run.
// Without it a run is meant to be complete, so a missing asset fails the
// test, naming what is missing and how to get it: a machine without the
// assets cannot pass by skipping. make test clears it.
const QuickEnv = "CREDBROKER_QUICK"

// The programs make test builds and names in the environment, beside
// AssetsEnv.
const (
	RegistryBinEnv = "CREDBROKER_REGISTRY_BIN"
	CraneBinEnv    = "CREDBROKER_CRANE_BIN"
	HelmBinEnv     = "CREDBROKER_HELM_BIN"
)

// Quick reports whether the developer asked for a quick run (QuickEnv).
func Quick() bool {
	v := os.Getenv(QuickEnv)
	return v != "" && v != "0"
}

// Missing is the gate every test goes through when something it needs is
// not on this machine: it fails tb with what is missing and how to get it
// (fix), or skips tb in a quick run. It does not return.
func Missing(tb testing.TB, what, fix string) {
	tb.Helper()
	if Quick() {
		tb.Skipf("%s not found (%s=1: skipped)", what, QuickEnv)
	}
	tb.Fatal(missingMessage(what, fix))
}

// Require is Missing for the assets named by envs (AssetsEnv,
// RegistryBinEnv, …): it returns when each is set and its programs exist.
func Require(tb testing.TB, envs ...string) {
	tb.Helper()
	if what, fix, ok := lacking(envs); !ok {
		Missing(tb, what, fix)
	}
}

// RequireMain is Require for a TestMain, where there is no test yet to fail
// or skip. It returns ok when every asset is there. Otherwise it prints what
// is missing, and code is what TestMain should exit with: 1, or in a quick
// run m.Run()'s (the package's tests then skip one by one through Require).
func RequireMain(m *testing.M, envs ...string) (code int, ok bool) {
	what, fix, ok := lacking(envs)
	if ok {
		return 0, true
	}
	if Quick() {
		fmt.Fprintf(os.Stderr, "%s not found (%s=1: skipping the tests that need it)\n", what, QuickEnv)
		return m.Run(), false
	}
	fmt.Fprintln(os.Stderr, "FAIL:", missingMessage(what, fix))
	return 1, false
}

func missingMessage(what, fix string) string {
	return fmt.Sprintf("%s not found: %s, or set %s=1 to skip the tests that need it", what, fix, QuickEnv)
}

// lacking names the first asset of envs that is unset or names no program,
// and how to get it; ok is whether every one is there.
func lacking(envs []string) (what, fix string, ok bool) {
	for _, env := range envs {
		a := assetOf(env)
		dir := os.Getenv(env)
		if dir == "" {
			return a.what, env + " is not set; " + a.fix, false
		}
		for _, file := range a.files {
			path := filepath.Join(dir, file)
			if info, err := os.Stat(path); err != nil || info.IsDir() {
				return a.what, env + "=" + dir + " has no " + path + "; " + a.fix, false
			}
		}
	}
	return "", "", true
}

// asset is a program, or a directory of them, that a test runs and go test
// cannot build itself: files are what must exist under the path env names
// ("." is that path itself).
type asset struct {
	what, fix string
	files     []string
}

func assetOf(env string) asset {
	switch env {
	case AssetsEnv:
		return asset{"kube-apiserver and etcd", "run `make testbin` and set " + AssetsEnv + "=$(hack/testbin.sh)",
			[]string{"kube-apiserver", "etcd", "kubectl"}}
	case RegistryBinEnv:
		return asset{"the CNCF Distribution registry", "run `make registry` and set " + RegistryBinEnv + "=$PWD/bin/registry", []string{"."}}
	case CraneBinEnv:
		return asset{"crane", "run `make crane` and set " + CraneBinEnv + "=$PWD/bin/crane", []string{"."}}
	case HelmBinEnv:
		return asset{"helm", "run `make helm` and set " + HelmBinEnv + "=$PWD/bin/helm", []string{"."}}
	}
	return asset{env, "set " + env, nil}
}
