package broker

import (
	"log/slog"
	"slices"
)

// SecretPayload is what a tenant's pull Secrets carry, built once per
// publication by the Refresher: the tenant's credential for each of its
// registries, and its further registries' entries with their passwords
// opened. A Sink that adds a per-namespace entry (an in-cluster registry's
// robot) adds it when it renders the payload for that namespace.
type SecretPayload struct {
	// Credential is the tenant's credential, written for every host of
	// Registries.
	Credential Credential
	Registries []string
	// RegistryAuths are the tenant's further registries, each with its
	// own username and opened password.
	RegistryAuths []RegistryAuth
}

// DockerConfigJSON renders the payload as a .dockerconfigjson, with the
// more entries (a namespace's robot) beside the payload's own.
func (p SecretPayload) DockerConfigJSON(more ...RegistryAuth) []byte {
	return DockerConfigJSON(p.Registries, p.Credential, append(slices.Clip(p.RegistryAuths), more...)...)
}

// LogValue keeps the token and the passwords out of logs.
func (p SecretPayload) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("credential", p.Credential), slog.Any("registries", p.Registries), slog.Any("registryAuths", p.RegistryAuths))
}
