// Package k8ssync is everything credbroker says to Kubernetes: the
// kubernetes.io/dockerconfigjson Secret in every namespace a tenant is bound
// to (Syncer), the imagePullSecrets of ServiceAccounts, Kubernetes Events,
// leader election on a Lease, and a tenant Store kept in Secrets so that
// several replicas share state.
//
// The Syncer follows the sample-controller shape: informers on namespaces,
// managed Secrets and ServiceAccounts feed a rate-limited workqueue keyed by
// namespace; reconcile compares what a namespace should hold with what it
// holds and writes only the difference. It never touches a Secret that lacks
// its managed-by label.
package k8ssync
