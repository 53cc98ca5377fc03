package k8ssync

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/credbroker/credbroker/broker"

	_ "embed"
)

var (
	//go:embed rbac.yaml
	rbacYAML []byte
	//go:embed rbac-namespaced.yaml
	namespacedRBACYAML []byte
)

// The package's real control plane: admin is cluster-admin (for setting up
// and inspecting), brokerCfg is the credbroker ServiceAccount bound to exactly
// rbac.yaml, which is what the code under test runs as.
var (
	controlPlane *testenv.ControlPlane
	admin        kubernetes.Interface
	brokerCfg    *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if code, ok := testenv.RequireMain(m, testenv.AssetsEnv); !ok {
		return code
	}
	cp, err := testenv.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	controlPlane, admin = cp, cp.Admin
	if _, err := admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "credbroker"}}, metav1.CreateOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := applyRBAC(context.Background(), rbacYAML, func(obj rbacObject) []rbacObject { return []rbacObject{obj} }); err != nil {
		fmt.Fprintln(os.Stderr, "apply rbac.yaml:", err)
		return 1
	}
	if brokerCfg, err = cp.AddUser("system:serviceaccount:credbroker:credbroker",
		"system:serviceaccounts", "system:serviceaccounts:credbroker", "system:authenticated"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The code under test gets credbroker's default client rate limits.
	brokerCfg.QPS, brokerCfg.Burst = DefaultQPS, DefaultBurst
	return m.Run()
}

// rbacObject is a ClusterRole, ClusterRoleBinding, Role or RoleBinding.
type rbacObject interface {
	metav1.Object
	runtime.Object
}

// applyRBAC creates every object of an RBAC file, each as edit turns it
// into none, one or several.
func applyRBAC(ctx context.Context, file []byte, edit func(rbacObject) []rbacObject) error {
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(file)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		decoded, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return err
		}
		obj, ok := decoded.(rbacObject)
		if !ok {
			return fmt.Errorf("the RBAC file holds a %T", decoded)
		}
		for _, obj := range edit(obj) {
			if err := createRBAC(ctx, obj); err != nil {
				return err
			}
		}
	}
}

func createRBAC(ctx context.Context, obj rbacObject) error {
	rbac := admin.RbacV1()
	var err error
	switch o := obj.(type) {
	case *rbacv1.ClusterRole:
		_, err = rbac.ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = rbac.ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = rbac.Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = rbac.RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("the RBAC file holds a %T", obj)
	}
	return err
}

// requireCluster skips a test in a quick run without a control plane
// (TestMain fails the package in a complete one).
func requireCluster(t testing.TB) {
	t.Helper()
	if admin == nil {
		testenv.Require(t, testenv.AssetsEnv)
	}
}

// testSyncer is a running Syncer.
type testSyncer struct {
	*Syncer
}

// Status is what the Syncer holds of a tenant's namespaces.
func (s *testSyncer) Status(tenantID string) []broker.NamespaceSync {
	return s.Namespaces(tenantID)
}

// startSyncer runs a Syncer as the credbroker ServiceAccount until the test
// ends.
func startSyncer(t testing.TB, cfg Config) *testSyncer {
	t.Helper()
	requireCluster(t)
	return startSyncerAs(t, brokerCfg, cfg)
}

// startSyncerAs runs a Syncer as the identity of restCfg.
func startSyncerAs(t testing.TB, restCfg *rest.Config, cfg Config) *testSyncer {
	t.Helper()
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(client, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return s.synced.Load(), "informer caches never synced" })
	return &testSyncer{Syncer: s}
}
