package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// AssetsEnv names the directory of kube-apiserver, etcd and kubectl
// (hack/testbin.sh prints it; make test sets it).
const AssetsEnv = "KUBEBUILDER_ASSETS"

// ControlPlane is a real kube-apiserver and etcd.
type ControlPlane struct {
	env *envtest.Environment
	// Config is cluster-admin's, with client limits high enough that setting
	// up thousands of objects is not what a test measures.
	Config *rest.Config
	Admin  kubernetes.Interface
}

// StartControlPlane starts kube-apiserver and etcd; Stop ends them. A
// package starts one in TestMain and shares it; see Cluster for one per test.
func StartControlPlane() (*ControlPlane, error) {
	// envtest complains on stderr when nobody set controller-runtime's logger.
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	admin := rest.CopyConfig(cfg)
	admin.QPS, admin.Burst = 2000, 4000
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &ControlPlane{env: env, Config: admin, Admin: client}, nil
}

// Cluster starts a control plane for one test (stopped when it ends) with
// the given namespaces created.
func Cluster(t testing.TB, namespaces ...string) *ControlPlane {
	t.Helper()
	Require(t, AssetsEnv)
	cp, err := StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	if err := cp.CreateNamespaces(context.Background(), namespaces...); err != nil {
		t.Fatal(err)
	}
	return cp
}

// Stop ends the control plane.
func (cp *ControlPlane) Stop() error { return cp.env.Stop() }

// CreateNamespaces creates namespaces.
func (cp *ControlPlane) CreateNamespaces(ctx context.Context, names ...string) error {
	for _, ns := range names {
		if _, err := cp.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return nil
}

// AddUser returns the client configuration of a user authenticated by a
// client certificate, with the given groups.
func (cp *ControlPlane) AddUser(name string, groups ...string) (*rest.Config, error) {
	user, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", name, err)
	}
	return user.Config(), nil
}

// Kubeconfig writes a kubeconfig of a cluster-admin user for a binary under
// test and returns its path.
func (cp *ControlPlane) Kubeconfig(t testing.TB, name string) string {
	t.Helper()
	user, err := cp.env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// APIServerCPU returns the CPU time (user and system) the control plane's
// kube-apiserver has used so far, from /proc: a cost measure far steadier
// than latency on a small machine shared with etcd and the test.
func (cp *ControlPlane) APIServerCPU() (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		u, err := UsageOf(pid)
		if err != nil || u.Command != "kube-apiserver" || u.Parent != os.Getpid() {
			continue // gone, or another test binary's
		}
		return u.CPU, nil
	}
	return 0, errors.New("no kube-apiserver started by this process")
}
