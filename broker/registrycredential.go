package broker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// RegistryCredential is a tenant's login to a registry other than the ones
// its GitHub source serves: a third-party registry, or a mirror of
// ghcr.io. Its entry in the tenant's pull Secret sits beside the GitHub
// credential and the in-cluster registry's robot.
//
// Password holds the plaintext only between the API and Tenants, which
// seals it; what is stored is Sealed and Fingerprint. The pull Secrets get
// the opened password as a RegistryAuth (Secrets.RegistryAuths), inside
// the SecretPayload.
type RegistryCredential struct {
	Host        string `json:"host"`
	Username    string `json:"username"`
	Password    string `json:"-"`
	Sealed      []byte `json:"sealed,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// Owners are the first path components (an organization, a project)
	// under which the tenant may run this registry's images. Images of a
	// mirror are judged as their upstream's, so a mirror's entry has none.
	Owners []string `json:"owners,omitempty"`
	// CheckImage is the image whose manifest the health check reads; empty,
	// the check is a login only.
	CheckImage string `json:"checkImage,omitempty"`
	// ExpiresAt, when set, is when the registry stops taking the password:
	// CREDENTIAL_EXPIRING is raised before it, as for a PAT.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// LogValue keeps the password out of logs even when an entry is logged whole.
func (c RegistryCredential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", c.Host), slog.String("username", c.Username), slog.String("fingerprint", c.Fingerprint))
}

// String keeps the password out of fmt output.
func (c RegistryCredential) String() string {
	return "RegistryCredential(" + c.Host + ", " + c.Username + ", " + c.Fingerprint + ")"
}

// GoString keeps the password out of %#v output.
func (c RegistryCredential) GoString() string { return c.String() }

// RegistryCredential returns the tenant's entry for host, if it has one.
func (t Tenant) RegistryCredential(host string) (RegistryCredential, bool) {
	i := slices.IndexFunc(t.RegistryCredentials, func(c RegistryCredential) bool { return strings.EqualFold(c.Host, host) })
	if i < 0 {
		return RegistryCredential{}, false
	}
	return t.RegistryCredentials[i], true
}

// RegistryCredentialData binds a sealed password to its tenant and host, so
// that it opens nowhere else.
func RegistryCredentialData(tenantID, host string) []byte {
	return []byte("credbroker/tenants/" + tenantID + "/registries/" + host)
}

// maxRegistryCredentials bounds a tenant's entries: each is a line of every
// pull Secret and a health check every interval.
const maxRegistryCredentials = 20

// RegistryHosts are the hosts whose credentials credbroker makes itself,
// which no tenant may give a static credential for.
type RegistryHosts struct {
	// Internal is the in-cluster registry whose robots credbroker writes;
	// empty without one.
	Internal string
}

// validateRegistryCredentials checks a tenant's entries, naming each bad
// field by its index: a registry host that no GitHub source and no robot
// covers, each once, with a username, a password (sealed or new), owners
// that are path components (none for a mirror) and a check image on the
// entry's own host, since the health check sends the password there.
func validateRegistryCredentials(vs *violations, t Tenant, hosts RegistryHosts, mirrors []Mirror) {
	if len(t.RegistryCredentials) > maxRegistryCredentials {
		vs.add("registry_credentials", "at most %d registries", maxRegistryCredentials)
	}
	seen := map[string]bool{}
	for i, c := range t.RegistryCredentials {
		field := func(name string) string { return fmt.Sprintf("registry_credentials[%d].%s", i, name) }
		mirror := slices.IndexFunc(mirrors, func(m Mirror) bool { return strings.EqualFold(strings.SplitN(m.Prefix, "/", 2)[0], c.Host) }) >= 0
		switch {
		case !validRegistryHost(c.Host):
			vs.add(field("host"), "%q is not a registry host (lowercase host name with optional :port, e.g. quay.io)", c.Host)
		case SlicesContainsFold(t.Registries, c.Host):
			vs.add(field("host"), "%s is a registry of the tenant's GitHub source, whose credential credbroker mints: a static one would shadow it", c.Host)
		case hosts.Internal != "" && strings.EqualFold(hosts.Internal, c.Host):
			vs.add(field("host"), "%s is the in-cluster registry: each namespace's robot logs in there", c.Host)
		case seen[strings.ToLower(c.Host)]:
			vs.add(field("host"), "%s has a credential already; rotate it instead", c.Host)
		}
		seen[strings.ToLower(c.Host)] = true
		switch {
		case c.Username == "":
			vs.add(field("username"), "required (for a token-only registry, the username it documents for tokens)")
		case len(c.Username) > 255 || strings.ContainsFunc(c.Username, func(r rune) bool { return r <= ' ' || r > '~' || r == ':' }):
			vs.add(field("username"), "is not a registry username (printable ASCII without spaces or ':', at most 255 characters)")
		}
		switch {
		case c.Password == "" && c.Sealed == nil:
			vs.add(field("password"), "required")
		case len(c.Password) > 4096 || strings.ContainsFunc(c.Password, func(r rune) bool { return r < ' ' || r == 0x7f }):
			vs.add(field("password"), "is not a registry password or token (no control characters, at most 4096 characters)")
		}
		for j, owner := range c.Owners {
			name := fmt.Sprintf("%s[%d]", field("owners"), j)
			switch _, err := reference.ParseNamed(c.Host + "/" + owner + "/name"); {
			case mirror:
				vs.add(name, "%s is a mirror: its images are judged as its upstream's, by the tenant's own owners", c.Host)
			case err != nil || strings.Contains(owner, "/"):
				vs.add(name, "%q is not a repository path component", owner)
			case slices.Contains(c.Owners[:j], owner):
				vs.add(name, "%q is listed twice", owner)
			}
		}
		if c.CheckImage != "" {
			named, err := reference.ParseNamed(c.CheckImage)
			switch {
			case err != nil:
				vs.add(field("check_image"), "%q is not an image reference with its registry: %v", c.CheckImage, err)
			case !strings.EqualFold(reference.Domain(named), c.Host):
				vs.add(field("check_image"), "%s is not on %s: the check sends this credential only to its own registry", c.CheckImage, c.Host)
			}
		}
	}
}

// ErrNoRegistryCredential is a registry the tenant has no credential for.
var ErrNoRegistryCredential = fmt.Errorf("no credential for that registry: %w", ErrNotFound)

// AddRegistryCredential gives the tenant a credential for one more
// registry; c.Password is the plaintext, which is sealed.
func (r *Tenants) AddRegistryCredential(ctx context.Context, tenantID, etag string, c RegistryCredential) (Tenant, error) {
	c.Host = strings.ToLower(c.Host)
	c.Sealed, c.Fingerprint = nil, ""
	return r.Update(ctx, tenantID, etag, func(t Tenant) (Tenant, error) {
		if err := r.checkExpiry(c); err != nil {
			return Tenant{}, err
		}
		t.RegistryCredentials = append(slices.Clone(t.RegistryCredentials), c)
		return t, nil
	})
}

// RotateRegistryCredential replaces the password of the tenant's entry for
// c.Host, and with it the expiry (none when c.ExpiresAt is zero) and, when
// given, the username; owners and the check image stay.
func (r *Tenants) RotateRegistryCredential(ctx context.Context, tenantID, etag string, c RegistryCredential) (Tenant, error) {
	return r.Update(ctx, tenantID, etag, func(t Tenant) (Tenant, error) {
		i := slices.IndexFunc(t.RegistryCredentials, func(e RegistryCredential) bool { return strings.EqualFold(e.Host, c.Host) })
		if i < 0 {
			return Tenant{}, fmt.Errorf("tenant %q, registry %s: %w", tenantID, c.Host, ErrNoRegistryCredential)
		}
		if c.Password == "" {
			return Tenant{}, &InvalidError{Violations: []FieldViolation{{Field: "password", Description: "required: rotating replaces the password"}}}
		}
		if err := r.checkExpiry(c); err != nil {
			return Tenant{}, err
		}
		t.RegistryCredentials = slices.Clone(t.RegistryCredentials)
		e := &t.RegistryCredentials[i]
		e.Password, e.Sealed, e.Fingerprint, e.ExpiresAt = c.Password, nil, "", c.ExpiresAt
		if c.Username != "" {
			e.Username = c.Username
		}
		return t, nil
	})
}

// RemoveRegistryCredential takes the tenant's entry for host out of its
// pull Secrets.
func (r *Tenants) RemoveRegistryCredential(ctx context.Context, tenantID, etag, host string) (Tenant, error) {
	return r.Update(ctx, tenantID, etag, func(t Tenant) (Tenant, error) {
		i := slices.IndexFunc(t.RegistryCredentials, func(e RegistryCredential) bool { return strings.EqualFold(e.Host, host) })
		if i < 0 {
			return Tenant{}, fmt.Errorf("tenant %q, registry %s: %w", tenantID, host, ErrNoRegistryCredential)
		}
		t.RegistryCredentials = slices.Delete(slices.Clone(t.RegistryCredentials), i, i+1)
		return t, nil
	})
}

// checkExpiry refuses a credential that has expired already: it would be
// written into Secrets only to fail every pull.
func (r *Tenants) checkExpiry(c RegistryCredential) error {
	if !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(r.clock.Now()) {
		return &InvalidError{Violations: []FieldViolation{{Field: "expire_time",
			Description: fmt.Sprintf("%s has passed: the credential is expired already", c.ExpiresAt.UTC().Format(time.RFC3339))}}}
	}
	return nil
}

// sealRegistryCredentials seals the entries that carry a new password, and
// returns them in a new slice without the plaintext.
func (r *Tenants) sealRegistryCredentials(tenantID string, creds []RegistryCredential) ([]RegistryCredential, error) {
	if !slices.ContainsFunc(creds, func(c RegistryCredential) bool { return c.Password != "" }) {
		return creds, nil
	}
	if r.sealer == nil {
		return nil, fmt.Errorf("tenant %q: %w", tenantID, ErrNoEncryptionKey)
	}
	out := slices.Clone(creds)
	for i, c := range out {
		if c.Password == "" {
			continue
		}
		sealed, err := r.sealer.SealAs(RegistryCredentialData(tenantID, c.Host), c.Password)
		if err != nil {
			return nil, fmt.Errorf("tenant %q, registry %s: %w", tenantID, c.Host, err)
		}
		out[i].Password, out[i].Sealed, out[i].Fingerprint = "", sealed, Fingerprint(c.Password)
	}
	return out, nil
}
