package k8ssync

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client-side rate limits toward the API server. client-go's own defaults
// (5 QPS, burst 10) would spread one rotation over 1,000 namespaces across
// minutes; these finish it in about 20 s while leaving the API server room.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// RestConfig loads a kubeconfig file, or the in-cluster configuration when
// path is empty, with the given client-side rate limits.
func RestConfig(path string, qps float32, burst int) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = Component
	return cfg, nil
}

// NewClient returns a clientset for cfg.
func NewClient(cfg *rest.Config) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(cfg)
}
