// Package github is everything credbroker says to GitHub and to a container
// registry: it mints GitHub App installation tokens (App JWT through
// ghinstallation, API through go-github), validates classic PATs, looks up
// installations, and proves that a credential pulls with the registry's own
// token handshake (PullProber, in registryprobe.go: the OCI distribution
// protocol ghcr.io speaks, which any registry of a tenant speaks too).
//
// Every failure is an *Error or a *RateLimitError carrying a broker.Reason,
// so callers branch on causes rather than on HTTP statuses. No error text or
// log line contains a token, a PAT or a key.
//
// Its subpackage emulator stands in for GitHub and ghcr.io in tests and in
// dev mode, which the production binary serves.
package github
