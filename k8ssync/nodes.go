package k8ssync

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AnyNode returns the name of one node of the cluster, or "" when it has
// none (or may not be asked): dev mode tells a user whether a Pod would run.
func AnyNode(ctx context.Context, client kubernetes.Interface) string {
	if client == nil {
		return ""
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(nodes.Items) == 0 {
		return ""
	}
	return nodes.Items[0].Name
}
