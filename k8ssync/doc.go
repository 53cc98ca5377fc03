// Package k8ssync is everything credbroker says to Kubernetes, and the one
// package that imports client-go:
//
//   - the Syncer (broker.Sink): the kubernetes.io/dockerconfigjson Secret in
//     every namespace a tenant is bound to, the imagePullSecrets of its
//     ServiceAccounts, the namespace marks the admission policy reads, the
//     state of each namespace for the credential status, and Kubernetes
//     Events about problems;
//   - the stores kept in the API server so that replicas share state: the
//     tenant Store, credentials, the event log, the audit trail and GitHub's
//     delivery inbox;
//   - what every replica keeps for the credential provider: the
//     TenantInformer, the PublicationSecrets, the NamespaceInformer (who owns
//     a namespace), PodEvents, BoundPods, TokenReviewer and
//     ServiceAccountIssuer;
//   - leader election on a Lease, Clients with a rate limit per kind of
//     work, ClusterNamespaces for registration, and ApplyAdmissionPolicy.
//
// The Syncer follows the sample-controller shape: informers on namespaces,
// managed Secrets and ServiceAccounts feed two rate-limited workqueues keyed
// by namespace (one for the namespaces of tenants' first publications, so
// that they are not queued behind a rotation, and one for the rest). A
// reconcile observes a namespace in the caches, plans what it should hold
// (plan.go, pure) and applies the difference (reconcile.go). It never
// touches a Secret that lacks its managed-by label.
package k8ssync
