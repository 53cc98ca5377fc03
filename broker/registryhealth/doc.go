// Package registryhealth checks the tenants' further registry credentials
// (quay.io, mirrors: the static passwords a tenant registered) on the
// leader: the Monitor logs in with each periodically through a
// broker.RegistryChecker, warns before one expires, raises
// REGISTRY_CHECK_FAILED, and puts an Event in the tenant's namespaces
// through a broker.EventReporter (the Syncer).
//
// It is its own room so that the Refresher sees only its Status: it imports
// the broker root, notify and internal/kit; refresh imports it, not the
// other way round.
package registryhealth
