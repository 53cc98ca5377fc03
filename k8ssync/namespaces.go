package k8ssync

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ClusterNamespaces implements broker.Namespaces: the cluster's namespaces and
// their labels, read (a page at a time) when a registration needs them.
type ClusterNamespaces struct {
	Client kubernetes.Interface
}

// ListNamespaces implements broker.Namespaces.
func (n ClusterNamespaces) ListNamespaces(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := n.Client.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		for _, ns := range list.Items {
			out[ns.Name] = ns.Labels
		}
		if opts.Continue = list.Continue; opts.Continue == "" {
			return out, nil
		}
	}
}
