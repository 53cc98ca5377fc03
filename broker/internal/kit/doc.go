// Package kit is what more than one of the broker's runtimes shares and
// no adapter needs: Backoff (equal jitter), ChangeSet (coalesced tenant
// changes), StepUntilDone (a loop over an injected clock), and the
// expiry-warning rules (ExpiryWarnings, CrossedWarning, ExpirySeverity).
// What one runtime alone uses stays in that runtime's room.
//
// It is internal so that it stays out of the adapters' reach, and imports
// only the broker root.
package kit
