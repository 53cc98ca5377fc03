package k8ssync

import (
	"fmt"
	"math"

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

// Budgets of the clients that are not the Syncer's. Leader election makes
// a request every two seconds at most; request-time work (TokenReviews,
// store reads a cache missed) is bounded so that a flood of callers cannot
// spend the budget the Lease and the Syncer need.
const (
	LeaderQPS, LeaderBurst     = 5, 10
	RequestsQPS, RequestsBurst = 20, 40
)

// Clients are the clientsets credbroker talks to the API server with, one
// per kind of work, each with a client-side rate limiter of its own: a
// flood of TokenReviews never delays the Lease renewal that keeps this
// replica the leader, nor the Syncer's writes.
type Clients struct {
	Leader   kubernetes.Interface // the leader-election Lease
	Sync     kubernetes.Interface // the Syncer, the store's writes and the leader's (--kube-qps)
	Requests kubernetes.Interface // TokenReviews, callers' store reads and other request-time calls
}

// NewClients returns Clients for cfg, whose QPS and Burst are the Syncer's.
func NewClients(cfg *rest.Config) (Clients, error) {
	with := func(qps float32, burst int) (kubernetes.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.QPS, c.Burst = qps, burst
		return kubernetes.NewForConfig(c)
	}
	var cs Clients
	var err error
	if cs.Leader, err = with(LeaderQPS, LeaderBurst); err != nil {
		return Clients{}, err
	}
	if cs.Sync, err = with(cfg.QPS, cfg.Burst); err != nil {
		return Clients{}, err
	}
	if cs.Requests, err = with(RequestsQPS, RequestsBurst); err != nil {
		return Clients{}, err
	}
	return cs, nil
}

// Store returns the tenant store credbroker runs with, in namespace: it
// writes with the Syncer's client, and callers' reads (a Lookup before the
// tenant cache has synced, the API's reads, /readyz) go through the
// Requests client, so that no caller spends the Syncer's budget.
func (cs Clients) Store(namespace string) *Store {
	s := NewStore(cs.Sync, namespace)
	s.reads = cs.Requests
	return s
}

// WorkersFor sizes the Syncer's workers to the client's rate limit: about
// one per 25 writes a second (a write takes a few milliseconds, longer on
// a busy API server), four at least, 32 at most. Workers beyond that only
// wait at the client's limiter.
func WorkersFor(qps float64) int { return min(max(4, int(math.Ceil(qps/25))), 32) }
