package broker

import (
	"errors"
)

// Errors a Store returns, and the registry passes on, for callers to branch on.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict means the tenant changed since the version the caller read.
	ErrConflict = errors.New("changed concurrently")
	// ErrNoEncryptionKey means a tenant's secret — its PAT or a registry
	// credential's password — must be sealed or opened and no key is
	// configured.
	ErrNoEncryptionKey = errors.New("no encryption key configured for PATs and registry passwords (--encryption-key-file or CREDBROKER_ENCRYPTION_KEY)")
	// ErrUnavailable means an answer cannot be given now but may be soon:
	// caches not filled yet, the API server unable to review a token.
	ErrUnavailable = errors.New("not available yet; retry")
	// ErrNoGitHubApp means an App installation must be used and no App is configured.
	ErrNoGitHubApp = errors.New("no GitHub App configured (--github-app-id, --github-app-key-file)")
)
