package k8ssync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
)

// namespacedBroker applies rbac-namespaced.yaml for an identity of its own
// (credbroker's cluster-wide rights would hide a missing grant), with the
// file's "granted" RoleBinding in each of granted, and returns that
// identity.
func namespacedBroker(t *testing.T, granted ...string) *rest.Config {
	t.Helper()
	requireCluster(t)
	suffix := unique("-ns")
	account := "credbroker" + suffix
	err := applyRBAC(context.Background(), namespacedRBACYAML, func(obj rbacObject) []rbacObject {
		obj.SetName(obj.GetName() + suffix)
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			for i, rule := range o.Rules {
				if slices.Equal(rule.ResourceNames, []string{"granted"}) {
					o.Rules[i].ResourceNames = granted
				}
			}
		case *rbacv1.ClusterRoleBinding:
			o.RoleRef.Name += suffix
			o.Subjects[0].Name = account
		case *rbacv1.RoleBinding:
			o.RoleRef.Name += suffix
			o.Subjects[0].Name = account
			if o.Namespace == "granted" {
				var out []rbacObject
				for _, ns := range granted {
					b := o.DeepCopy()
					b.Namespace = ns
					out = append(out, b)
				}
				return out
			}
		}
		return []rbacObject{obj}
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := controlPlane.AddUser("system:serviceaccount:credbroker:"+account,
		"system:serviceaccounts", "system:serviceaccounts:credbroker", "system:authenticated")
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	return cfg
}

// In namespaced mode the broker runs with Secret rights in granted
// namespaces only: it watches and writes there (ServiceAccounts included),
// a selector reaching a namespace it was not granted reports that
// namespace FAILED with the reason instead of writing, and the identity
// really has no rights elsewhere (so the test would fail if the Syncer
// needed them).
func TestNamespacedModeWritesOnlyWhereGranted(t *testing.T) {
	requireCluster(t)
	label := unique("nsmode")
	granted := []string{label + "-a", label + "-b"}
	outside := label + "-c"
	for _, ns := range append(granted, outside) {
		createNamespace(t, ns, map[string]string{"team": label})
	}
	restCfg := namespacedBroker(t, granted...)
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		_, err := client.CoreV1().Secrets(granted[1]).List(context.Background(), metav1.ListOptions{Limit: 1})
		return err == nil, fmt.Sprintf("the grant is not in force: %v", err)
	})
	if _, err := client.CoreV1().Secrets(outside).List(context.Background(), metav1.ListOptions{Limit: 1}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing Secrets outside the grant: %v, want Forbidden", err)
	}
	if _, err := client.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{Limit: 1}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing Secrets cluster-wide: %v, want Forbidden", err)
	}

	s := startSyncerAs(t, restCfg, Config{Scope: broker.NamespaceScope{Reserved: []string{"credbroker"}, Granted: granted}})
	cred := credential("ghp_namespaced0000000000000000000000000")
	publish(t, s, tenant("scoped", func(t *broker.Tenant) {
		t.NamespaceSelector = "team=" + label
		t.PatchServiceAccounts = true
	}), cred)
	for _, ns := range granted {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, st := range s.Status("scoped") {
			if st.Namespace == outside {
				return st.State == broker.SyncFailed && strings.Contains(st.Message, "not granted"), fmt.Sprintf("%s: %+v", outside, st)
			}
		}
		return false, outside + " not reported"
	})
	if _, ok := getSecret(t, outside, "ghcr-secret"); ok {
		t.Errorf("a Secret was written into %s, which was never granted", outside)
	}

	// A ServiceAccount created in a granted namespace is seen by the
	// namespace's own informer and patched.
	if _, err := admin.CoreV1().ServiceAccounts(granted[0]).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		sa, err := admin.CoreV1().ServiceAccounts(granted[0]).Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return hasPullSecret(sa, "ghcr-secret"), fmt.Sprintf("imagePullSecrets %v", sa.ImagePullSecrets)
	})

	// A rotation reaches every granted namespace; removal cleans them up.
	rotated := credential("ghp_namespaced1111111111111111111111111")
	publish(t, s, tenant("scoped", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label; t.PatchServiceAccounts = true }), rotated)
	for _, ns := range granted {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, rotated) })
	}
	if err := s.Remove(context.Background(), "scoped"); err != nil {
		t.Fatal(err)
	}
	for _, ns := range granted {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			_, ok := getSecret(t, ns, "ghcr-secret")
			return !ok, ns + " still holds the removed tenant's Secret"
		})
	}
}
