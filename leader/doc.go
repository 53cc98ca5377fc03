// Package leader is what one replica runs while it holds the leadership.
//
// A Term wires, for one term, the Syncer that writes pull Secrets, the
// Refresher that keeps credentials fresh and the Secrets' state it keeps
// (SyncLedger), and, when configured, the registry checks, the deliverer of
// the backend webhook's outbox and the runner of GitHub's webhook
// deliveries; a part that stops or panics ends the term. Hold runs terms
// back to back for as long as the replica leads. The API serves from any
// replica; these run on one.
package leader
