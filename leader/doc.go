// Package leader is what one replica runs while it holds the leadership.
//
// A Term wires, for one term, the Syncer that writes pull Secrets and keeps
// each namespace's state (reporting changes to refresh.SyncConditions), the
// Refresher that keeps credentials fresh, and, when configured, the
// registry checks (registryhealth.Monitor), the deliverer of the backend
// webhook's outbox (notify.Outbox) and the runner of GitHub's webhook
// deliveries (inbox.Runner); a part that stops or panics ends the term. Hold runs terms
// back to back for as long as the replica leads. The API serves from any
// replica; these run on one.
package leader
