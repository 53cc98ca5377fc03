// Package kit is what the broker's runtimes share and no adapter needs:
// Backoff (equal jitter), ChangeSet (coalesced tenant changes), Guarded
// (a call out of the process whose panic becomes an error), StepUntilDone
// (a loop over an injected clock), Signal, and the expiry-warning rules
// (ExpiryWarnings, CrossedWarning, ExpirySeverity).
//
// It is internal so that it stays out of the adapters' reach, and imports
// only the broker root.
package kit
