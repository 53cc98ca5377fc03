package broker

import (
	"errors"
	"fmt"
)

// Secrets opens what the tenant registry sealed: a tenant's PAT and the
// passwords of its registry entries. It is the one door through which they
// leave in plaintext. Tenants hands it out (Tenants.Secrets) to the
// Refresher and the registry checks; the credential exchange, which reads
// tenants from a cache on every replica, makes its own from the same key.
// Without a key it opens nothing (ErrNoEncryptionKey).
type Secrets struct{ sealer *Sealer }

// NewSecrets returns the door for values sealed with sealer (nil: none).
func NewSecrets(sealer *Sealer) Secrets { return Secrets{sealer: sealer} }

// PAT returns the plaintext PAT of a tenant.
func (s Secrets) PAT(t Tenant) (string, error) {
	if t.PAT == nil {
		return "", fmt.Errorf("tenant %q has no PAT", t.ID)
	}
	if s.sealer == nil {
		return "", fmt.Errorf("open PAT of tenant %q: %w", t.ID, ErrNoEncryptionKey)
	}
	token, err := s.sealer.Open(t.ID, t.PAT.Sealed)
	if err != nil {
		return "", fmt.Errorf("open PAT of tenant %q: %w", t.ID, err)
	}
	return token, nil
}

// RegistryPassword returns the plaintext password of one registry entry of
// the tenant with the given id.
func (s Secrets) RegistryPassword(tenantID string, c RegistryCredential) (string, error) {
	if s.sealer == nil {
		return "", fmt.Errorf("open the credential of tenant %q for %s: %w", tenantID, c.Host, ErrNoEncryptionKey)
	}
	password, err := s.sealer.OpenAs(RegistryCredentialData(tenantID, c.Host), c.Sealed)
	if err != nil {
		return "", fmt.Errorf("open the credential of tenant %q for %s: %w", tenantID, c.Host, err)
	}
	return password, nil
}

// RegistryAuths opens the password of each of t's registry entries, for
// its pull Secrets; an entry that does not open is left out, and its error
// returned (the health check reports it on the entry).
func (s Secrets) RegistryAuths(t Tenant) ([]RegistryAuth, error) {
	var errs []error
	auths := make([]RegistryAuth, 0, len(t.RegistryCredentials))
	for _, c := range t.RegistryCredentials {
		password, err := s.RegistryPassword(t.ID, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		auths = append(auths, RegistryAuth{Host: c.Host, Username: c.Username, Password: password})
	}
	return auths, errors.Join(errs...)
}
