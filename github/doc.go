// Package github is everything credbroker says to GitHub and to a container
// registry, and what GitHub says to it: it mints GitHub App installation
// tokens (App JWT through ghinstallation, API through go-github), validates
// classic PATs, looks up installations (client.go), proves that a credential
// pulls with the registry's own token handshake and that a further
// registry takes a login (PullProber, in registryprobe.go: the OCI
// distribution protocol ghcr.io speaks, which any registry of a tenant
// speaks too), and receives the App's webhook deliveries (DeliveryHandler,
// in webhook.go), which it checks and hands to an Accept function (the
// inbox.Runner's, which stores them for the leader to act on).
//
// Every failure is an *Error or a *RateLimitError carrying a broker.Reason,
// so callers branch on causes rather than on HTTP statuses. No error text or
// log line contains a token, a PAT or a key.
//
// Its subpackage emulator stands in for GitHub and ghcr.io in tests and in
// dev mode, which the production binary serves.
package github
