package testenv

import (
	"cmp"
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
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
