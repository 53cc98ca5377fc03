package k8ssync

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/broker"
)

// BoundPods asks the API server whether the Pod a ServiceAccount token was
// bound to, and its ServiceAccount, are still there: what the API server
// itself checks of a bound token, which the registry token service asks
// again at each refresh. It implements registrytoken.BoundPods. Client
// should be the callers' client (Clients.Requests), never the Syncer's.
type BoundPods struct {
	Client kubernetes.Interface
}

// StillBound returns nil while the Pod (the same one: its UID) runs, not
// being deleted, under the ServiceAccount, and that ServiceAccount exists;
// a *broker.DeniedError once either is gone or replaced.
func (b BoundPods) StillBound(ctx context.Context, pod broker.PodIdentity) error {
	gone := func(format string, args ...any) error {
		return &broker.DeniedError{Denial: broker.DenyTokenRejected, Msg: fmt.Sprintf(format, args...)}
	}
	p, err := b.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return gone("Pod %s/%s was deleted", pod.Namespace, pod.Pod)
	case apierrors.IsForbidden(err): // namespaced mode, outside the granted namespaces: never checkable
		return gone("credbroker may not read Pods in namespace %s, so it cannot check a refresh token: authenticate again", pod.Namespace)
	case err != nil:
		return fmt.Errorf("get Pod %s/%s: %w: %w", pod.Namespace, pod.Pod, broker.ErrUnavailable, err)
	case pod.PodUID != "" && string(p.UID) != pod.PodUID:
		return gone("Pod %s/%s was deleted (another Pod now has its name)", pod.Namespace, pod.Pod)
	case p.DeletionTimestamp != nil:
		return gone("Pod %s/%s is being deleted", pod.Namespace, pod.Pod)
	case p.Spec.ServiceAccountName != pod.ServiceAccount:
		return gone("Pod %s/%s does not run as ServiceAccount %s", pod.Namespace, pod.Pod, pod.ServiceAccount)
	}
	_, err = b.Client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, pod.ServiceAccount, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return gone("ServiceAccount %s/%s was deleted", pod.Namespace, pod.ServiceAccount)
	case err != nil:
		return fmt.Errorf("get ServiceAccount %s/%s: %w: %w", pod.Namespace, pod.ServiceAccount, broker.ErrUnavailable, err)
	}
	return nil
}
