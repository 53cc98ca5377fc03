package broker

import (
	"time"
)

// CredentialState summarises whether a tenant can pull right now.
type CredentialState string

// Credential states.
const (
	CredentialPending  CredentialState = "PENDING"  // nothing obtained yet
	CredentialReady    CredentialState = "READY"    // a valid credential is published
	CredentialDegraded CredentialState = "DEGRADED" // published and valid, but refreshing or proving it fails
	CredentialFailed   CredentialState = "FAILED"   // nothing valid published, or a failure only a person can fix
)

// CredentialError is the last failure to obtain, prove or publish a credential.
type CredentialError struct {
	Reason  Reason
	Message string
	Time    time.Time
}

// CredentialStatus describes a tenant's credential without revealing it.
type CredentialStatus struct {
	TenantID    string
	Kind        CredentialKind
	State       CredentialState
	Fingerprint string
	Username    string
	ExpiresAt   time.Time
	LastRefresh time.Time
	NextRefresh time.Time
	LastError   *CredentialError
	Probe       *ProbeResult
	Namespaces  []NamespaceSync
	// Registries are the tenant's further registry credentials, as their
	// health checks found them.
	Registries []RegistryStatus
}

// RegistryState is the health of one registry credential of a tenant.
type RegistryState string

// RegistryStatus is one registry credential of a tenant as its health
// checks found it, without the password.
type RegistryStatus struct {
	Host, Username, Fingerprint, CheckImage string
	ExpiresAt                               time.Time
	State                                   RegistryState
	LastCheck, NextCheck                    time.Time
	Error                                   *CredentialError
}

// ProbeResult is the outcome of a tenant's last pull probe.
type ProbeResult struct {
	Image string
	Pulls bool
	Error *CredentialError
	Time  time.Time
}

// Registry states.
const (
	RegistryPending RegistryState = "PENDING" // not checked yet
	RegistryHealthy RegistryState = "HEALTHY" // the last check passed
	RegistryFailing RegistryState = "FAILING" // the last check failed
	RegistryExpired RegistryState = "EXPIRED" // past its expiry date
)
