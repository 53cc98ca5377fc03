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
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/credbroker/credbroker/broker"

	_ "embed"
)

//go:embed rbac.yaml
var rbacYAML []byte

// The package's real control plane: admin is cluster-admin (for setting up
// and inspecting), brokerCfg is the credbroker ServiceAccount bound to exactly
// rbac.yaml, which is what the code under test runs as.
var (
	admin     kubernetes.Interface
	brokerCfg *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if missing := testenv.Missing(testenv.AssetsEnv); missing != "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, missing, "is not set: run the tests with make test")
			return 1
		}
		fmt.Fprintln(os.Stderr, "k8ssync:", missing, "not set (make test sets it); skipping the real-apiserver tests")
		return m.Run()
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
	admin = cp.Admin
	if err := applyRBAC(context.Background()); err != nil {
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

// applyRBAC creates credbroker's namespace and every object of rbac.yaml.
func applyRBAC(ctx context.Context) error {
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "credbroker"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rbacYAML)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return err
		}
		rbac := admin.RbacV1()
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
			err = fmt.Errorf("rbac.yaml holds a %T", obj)
		}
		if err != nil {
			return err
		}
	}
}

// requireCluster skips a test when no control plane was started.
func requireCluster(t testing.TB) {
	t.Helper()
	if admin == nil {
		t.Skip("no kube-apiserver (KUBEBUILDER_ASSETS unset)")
	}
}

// testSyncer is a running Syncer and the ledger it reports to.
type testSyncer struct {
	*Syncer
	ledger *broker.SyncLedger
}

// Status is what the Syncer reported of a tenant's namespaces.
func (s *testSyncer) Status(tenantID string) []broker.NamespaceSync {
	return s.ledger.Namespaces(tenantID)
}

// startSyncer runs a Syncer as the credbroker ServiceAccount until the test
// ends, reporting to a ledger of its own.
func startSyncer(t testing.TB, cfg Config) *testSyncer {
	t.Helper()
	requireCluster(t)
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	ledger := broker.NewSyncLedger(nil)
	cfg.Reporter = ledger
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
	return &testSyncer{Syncer: s, ledger: ledger}
}
