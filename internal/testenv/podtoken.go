package testenv

import (
	"cmp"
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodOfServiceAccount creates ServiceAccount sa and a Pod name running as
// it in ns: what a token can be bound to, on a control plane without a node
// (the Pod is never scheduled).
func PodOfServiceAccount(t testing.TB, client kubernetes.Interface, ns, sa, name string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/acme/app:v1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// ServiceAccountToken asks the API server for a token of pod's
// ServiceAccount for audience, bound to pod when bound is set (as the
// kubelet asks for its credential provider).
func ServiceAccountToken(t testing.TB, client kubernetes.Interface, pod *corev1.Pod, audience string, bound bool) string {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}
	if bound {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	sa := cmp.Or(pod.Spec.ServiceAccountName, "default")
	tr, err := client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(context.Background(), sa, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// Node returns a client of the node name as the kubelet authenticates
// (user system:node:<name>, group system:nodes), allowed to request
// ServiceAccount tokens for audience as the chart's nodeRBAC allows.
// The control plane authorizes with RBAC only (no Node authorizer), so
// the grant is a ClusterRole of its own.
func (cp *ControlPlane) Node(t testing.TB, name, audience string) kubernetes.Interface {
	t.Helper()
	return cp.User(t, "system:node:"+name, "", []string{"system:nodes"},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{audience}, Verbs: []string{"request-serviceaccounts-token-audience"}})
}

// Everything is every verb on every resource: bound in a namespace, the
// most a RoleBinding gives that namespace's admin (who may then patch the
// Namespace object itself).
var Everything = rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}

// User returns a client of user name, in groups (and system:authenticated),
// granted rules in namespace (a Role and RoleBinding named after the user)
// or cluster-wide when namespace is "" (a ClusterRole and binding): the
// tests' attackers and the platform's own identities.
func (cp *ControlPlane) User(t testing.TB, name, namespace string, groups []string, rules ...rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	rbac := cp.Admin.RbacV1()
	var err error
	if namespace != "" {
		_, err = rbac.Roles(namespace).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		if err == nil {
			_, err = rbac.RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}, Subjects: subject}, metav1.CreateOptions{})
		}
	} else {
		_, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		if err == nil {
			_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}, Subjects: subject}, metav1.CreateOptions{})
		}
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cfg, err := cp.AddUser(name, append(groups, "system:authenticated")...)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}
