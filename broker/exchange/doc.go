// Package exchange answers the kubelet's credential provider on any
// replica: the Exchanger maps a Pod's namespace to its tenant
// (broker.NamespaceOwners), checks the image against the tenant's rules and
// answers from Publications, the sealed copy of what the leader last
// published (a PublicationStore; MemoryPublications for one process).
// Denials are reported, and raised as PULL_DENIED when they repeat.
//
// It is its own room because every replica runs it, not only the leader:
// it imports the broker root and notify, never refresh (the Refresher puts
// publications through the same Publications type).
package exchange
