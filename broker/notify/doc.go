// Package notify turns conditions into events and events into deliveries:
// the Notifier raises and resolves conditions, deduplicated, into the
// EventStore (the event log, and the outbox in the same write), and the
// Outbox delivers the outbox to the backend's webhook as signed POSTs
// (Sign), with backoff, dead letters and a bound.
//
// It is its own room because every runtime raises conditions through it
// (refresh, exchange, registryhealth) while it needs none of them: it
// imports only the broker root and internal/kit.
package notify
