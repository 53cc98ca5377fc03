// Package broker is credbroker's domain: tenants and their validation, the
// tenant registry, and the gRPC services the platform backend calls.
//
// It declares the small interfaces it consumes (Store, and later Source,
// Sink and Notifier) and is satisfied by adapters in other packages; it
// imports neither client-go nor go-github, so every rule here is testable
// without a cluster or GitHub.
package broker
