// Package broker is credbroker's domain: tenants and their validation, the
// tenant Registry, image ownership, the Refresher that keeps each
// credential fresh and published, the Notifier and its webhook deliverer,
// and the SyncConditions that turn what a Sink reports into conditions.
//
// It declares the small interfaces it consumes (Store, CredentialStore,
// EventStore, AuditStore, Source, Prober, Sink, SyncReporter) and is
// satisfied by adapters in other packages; it imports neither gRPC, the
// generated API, client-go nor go-github, so every rule here is testable
// without a server, a cluster or GitHub. The gRPC services live in api.
//
// The Refresher reads as parts, each in a file of its own: refresher.go
// (the loop), timing.go (when to renew and retry, pure), keys.go (which
// tenants share which credential), renew.go (the one verb that mints),
// probe.go (prove before publish), conditions.go (which failure is which
// event), status.go, installation.go (GitHub's word) and credstore.go
// (surviving a restart).
package broker
