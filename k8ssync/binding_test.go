package k8ssync

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
)

// testGuard is the guard the package's tests apply: credbroker's identity
// as the tests run it, cluster-admins and one namespace provisioner as the
// platform's identities.
var testGuard = admission.MarkGuardConfig{User: admission.GuardUser, WriterUsers: []string{provisionerUser}, WriterGroups: []string{"system:masters"}}

// provisionerUser stands for a namespace provisioner (Capsule, a platform
// controller) the platform lists as a writer of the binding labels.
const provisionerUser = "system:serviceaccount:platform:provisioner"

// selectorScope is credbroker's default: selectors on the platform's prefix.
var selectorScope = broker.NamespaceScope{Reserved: []string{"credbroker"}, SelectorPrefix: broker.DefaultSelectorPrefix}

// userClient is a client of user name with rules in ns (cluster-wide when
// ns is "").
func userClient(t *testing.T, name, ns string, rules ...rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	return controlPlane.User(t, name, ns, nil, rules...)
}

// applyGuard applies the admission policies with testGuard and waits until
// the API server refuses client a mark on ns (its policy cache follows the
// objects within a second or so).
func applyGuard(t *testing.T, client kubernetes.Interface, ns string) {
	t.Helper()
	if err := ApplyAdmissionPolicy(context.Background(), admin, admission.Enforce, admission.ProviderAudience, testGuard); err != nil {
		t.Fatal(err)
	}
	mark := []byte(`{"metadata":{"labels":{"credbroker.io/tenant":"anyone"}}}`)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, err := client.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, mark, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), admission.GuardName), fmt.Sprintf("the guard is not in force yet: %v", err)
	})
}

// Hole 1 of issue 30, played by the attacker against a real API server: a
// namespace admin (a Role with every verb on everything of its namespace,
// which reaches its Namespace object) labels its namespace with another
// tenant's selector label, and a user who may create namespaces creates one
// with it. The guard refuses both: only the platform's identities set
// labels under the prefix. Before the fix both went through and within a
// second the Syncer wrote the victim's pull Secret there.
func TestANamespaceAdminCannotJoinAnotherTenantsSelector(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	label := unique("victim")
	selectorLabel := broker.DefaultSelectorPrefix + "team"
	victimNS, attackerNS := label+"-web", label+"-evil"
	createNamespace(t, victimNS, map[string]string{selectorLabel: label}) // by cluster-admin, a writer
	createNamespace(t, attackerNS, nil)
	nsAdmin := userClient(t, "ns-admin-"+label, attackerNS, testenv.Everything)
	applyGuard(t, nsAdmin, attackerNS)

	s := startSyncer(t, Config{Scope: selectorScope, MarkNamespaces: true})
	web := tenant("web-"+label, func(t *broker.Tenant) { t.NamespaceSelector = selectorLabel + "=" + label })
	publish(t, s, web, credential("ghp_victim00000000000000000000000000000"))
	waitForSecret(t, victimNS, web.SecretName)

	// The attacker can write its namespace (it may patch what it likes
	// there), only not that label.
	if _, err := nsAdmin.CoreV1().Namespaces().Patch(ctx, attackerNS, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"team":"anything"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("the namespace admin may not label its namespace at all: %v", err)
	}

	t.Run("labelling its own namespace", func(t *testing.T) {
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, selectorLabel, label)
		_, err := nsAdmin.CoreV1().Namespaces().Patch(ctx, attackerNS, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), admission.GuardName) || !strings.Contains(err.Error(), broker.DefaultSelectorPrefix) {
			t.Fatalf("the namespace admin labelled its namespace %s=%s: %v", selectorLabel, label, err)
		}
		// A full update is judged alike.
		nsObj, err := nsAdmin.CoreV1().Namespaces().Get(ctx, attackerNS, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nsObj.Labels[selectorLabel] = label
		if _, err := nsAdmin.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("the namespace admin relabelled its namespace by update: %v", err)
		}
		if _, ok := getSecret(t, attackerNS, web.SecretName); ok {
			t.Fatal("the victim's pull Secret is in the attacker's namespace")
		}
	})

	t.Run("creating a labelled namespace", func(t *testing.T) {
		creator := userClient(t, "ns-creator-"+label, "", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create", "get", "update", "patch"}})
		created := label + "-made"
		_, err := creator.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: created,
			Labels: map[string]string{selectorLabel: label}}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), admission.GuardName) {
			t.Fatalf("a namespace creator made %s labelled %s=%s: %v", created, selectorLabel, label, err)
		}
		// Without the label it may, as before.
		if _, err := creator.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: created,
			Labels: map[string]string{"team": label}}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("a namespace creator may not create a namespace: %v", err)
		}
	})

	t.Run("nor can it take the label off the victim's namespace", func(t *testing.T) {
		victimAdmin := userClient(t, "ns-admin-"+label+"-web", victimNS, testenv.Everything)
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, selectorLabel)
		if _, err := victimAdmin.CoreV1().Namespaces().Patch(ctx, victimNS, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("a namespace admin removed the binding label: %v", err)
		}
	})

	t.Run("a listed provisioner binds", func(t *testing.T) {
		provisioner := userClient(t, provisionerUser, "", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}})
		provisioned := label + "-provisioned"
		if _, err := provisioner.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: provisioned,
			Labels: map[string]string{selectorLabel: label}}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the platform's provisioner could not create a bound namespace: %v", err)
		}
		waitForSecret(t, provisioned, web.SecretName)
	})
}

// A tenant whose selector predates the prefix (read from the store, as a
// restarted credbroker reads it) keeps the namespace it holds, marked as
// its own, and binds no new one however it is labelled; the Syncer and the
// credential exchange's NamespaceOwners agree. Before the fix the new
// namespace got its Secret and its exchange answers.
func TestASelectorOutsideThePrefixKeepsWhatItHoldsAndBindsNothingNew(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	label := unique("legacy")
	held, fresh := label+"-held", label+"-fresh"
	home := unique("store")
	createNamespace(t, home, nil)
	createNamespace(t, held, map[string]string{"team": label})
	createNamespace(t, fresh, nil)
	// held was bound before the upgrade: it carries the tenant's mark,
	// which only credbroker may write.
	legacy := tenant("legacy-"+label, func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label })
	if _, err := brokerClient(t).CoreV1().Namespaces().Patch(ctx, held, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"credbroker.io/tenant":"`+legacy.ID+`"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// The namespace's users label fresh after the upgrade: team is not
	// under the prefix, so the guard lets them.
	nsAdmin := userClient(t, "ns-admin-"+label, fresh, testenv.Everything)
	if _, err := nsAdmin.CoreV1().Namespaces().Patch(ctx, fresh, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"team":"`+label+`"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	store := NewStore(brokerClient(t), home)
	if _, err := store.CreateTenant(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	scope := selectorScope
	scope.Reserved = append(scope.Reserved, home)
	s := startSyncer(t, Config{Scope: scope, MarkNamespaces: true})
	stored, err := store.GetTenant(ctx, legacy.ID)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s, stored, credential("ghp_legacy00000000000000000000000000000"))
	waitForSecret(t, held, legacy.SecretName)
	idle(t, s)
	if _, ok := getSecret(t, fresh, legacy.SecretName); ok {
		t.Error("a namespace labelled after the upgrade got the legacy tenant's Secret")
	}
	if nsObj, err := admin.CoreV1().Namespaces().Get(ctx, fresh, metav1.GetOptions{}); err != nil || nsObj.Labels[broker.NamespaceMark] != "" {
		t.Errorf("the new namespace is marked: %v %v", nsObj.Labels, err)
	}

	tenants := NewTenantInformer(brokerClient(t), home)
	owners := NewNamespaceInformer(brokerClient(t), tenants, scope)
	runUntilCleanup(t, tenants.Run)
	runUntilCleanup(t, owners.Run)
	owner := func(ns string) string {
		tn, ok, err := owners.NamespaceOwner(ns)
		switch {
		case err != nil:
			return "error: " + err.Error()
		case !ok:
			return ""
		}
		return tn.ID
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the caches never filled", func() bool { return !strings.HasPrefix(owner(held), "error: ") }))
	for _, tc := range []struct{ ns, want string }{{held, legacy.ID}, {fresh, ""}} {
		if got := owner(tc.ns); got != tc.want {
			t.Errorf("the exchange's owner of %s: %q, want %q", tc.ns, got, tc.want)
		}
	}
}

// waitForSecret waits until ns holds the Secret name.
func waitForSecret(t *testing.T, ns, name string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, ok := getSecret(t, ns, name)
		return ok, "no Secret " + name + " in " + ns
	})
}
