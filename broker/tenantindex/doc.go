// Package tenantindex keeps every tenant in memory by the namespaces it
// lists and whether it has a selector (Index), for the credential
// provider's exchange on a replica whose store has no watch (the embedded
// store of dev mode). k8ssync's informer does this job over the Kubernetes
// store.
//
// It is its own room because only that wiring uses it: it imports only the
// broker root and internal/kit (its reload loop is kit.StepUntilDone).
package tenantindex
