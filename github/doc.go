// Package github is everything credbroker says to GitHub and to a container
// registry: it mints GitHub App installation tokens (App JWT through
// ghinstallation, API through go-github), validates classic PATs, looks up
// installations, and proves that a credential pulls with the registry's own
// token handshake (Prober).
//
// Every failure is an *Error or a *RateLimitError carrying a broker.Reason,
// so callers branch on causes rather than on HTTP statuses. No error text or
// log line contains a token, a PAT or a key.
//
// Its subpackage emulator is a GitHub emulator for tests and dev mode.
package github
