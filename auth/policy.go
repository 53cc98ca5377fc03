package auth

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Roles. Tenant roles name their tenant: "tenant-reader:web".
const (
	RoleAdmin = "admin"
	// RoleMetricsReader may read /metrics (tenant ids are labels there), and nothing else.
	RoleMetricsReader  = "metrics-reader"
	RoleTenantAdmin    = "tenant-admin"
	RoleTenantReader   = "tenant-reader"
	groupSubjectPrefix = "group:"
)

// TenantRole names a role on one tenant.
func TenantRole(role, tenant string) string { return role + ":" + tenant }

// Policy binds names and groups to roles:
//
//	bindings:
//	  - subject: platform-backend            # an identity's name
//	    roles: [admin]
//	  - subject: group:team-web              # everyone in a group
//	    roles: ["tenant-admin:web"]
type Policy struct {
	bindings map[string][]string
}

// LoadPolicy reads a policy file. Roles must be admin, tenant-admin:<id> or
// tenant-reader:<id>.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	var doc struct {
		Bindings []struct {
			Subject string   `json:"subject"`
			Roles   []string `json:"roles"`
		} `json:"bindings"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	p := &Policy{bindings: map[string][]string{}}
	for i, b := range doc.Bindings {
		if b.Subject == "" || b.Subject == groupSubjectPrefix {
			return nil, fmt.Errorf("policy file %s: binding %d has no subject", path, i)
		}
		for _, role := range b.Roles {
			if err := checkRole(role); err != nil {
				return nil, fmt.Errorf("policy file %s: binding %d: %w", path, i, err)
			}
		}
		p.bindings[b.Subject] = append(p.bindings[b.Subject], b.Roles...)
	}
	return p, nil
}

func checkRole(role string) error {
	kind, tenant, scoped := strings.Cut(role, ":")
	switch {
	case role == RoleAdmin, role == RoleMetricsReader:
		return nil
	case scoped && tenant != "" && (kind == RoleTenantAdmin || kind == RoleTenantReader):
		return nil
	}
	return fmt.Errorf("role %q: want admin, metrics-reader, tenant-admin:<tenant> or tenant-reader:<tenant>", role)
}

// Roles returns every role id holds: its own (token file entries) and those
// bound to its name or any of its groups. A nil Policy binds nothing.
func (p *Policy) Roles(id Identity) []string {
	roles := slices.Clone(id.Roles)
	if p == nil {
		return roles
	}
	roles = append(roles, p.bindings[id.Name]...)
	for _, g := range id.Groups {
		roles = append(roles, p.bindings[groupSubjectPrefix+g]...)
	}
	return roles
}

// Access is what a method asks of its caller.
type Access int

// Accesses.
const (
	// Public methods need no identity (health checks, reflection).
	Public Access = iota
	// Admin methods are the platform backend's.
	Admin
	// TenantRead methods are allowed to the tenant's readers and admins;
	// without a tenant in the request, to admins only.
	TenantRead
	// TenantWrite methods are allowed to the tenant's admins.
	TenantWrite
	// SelfAuthenticated methods carry their own credential in the request
	// and check it themselves: the credential provider's exchange, whose
	// caller (a node) holds nothing but the Pod's ServiceAccount token.
	// The Guard asks for no identity and grants no role.
	SelfAuthenticated
)

// Allowed reports whether roles grant access to tenant.
func Allowed(roles []string, access Access, tenant string) bool {
	if access == Public || slices.Contains(roles, RoleAdmin) {
		return true
	}
	if tenant == "" {
		return false
	}
	switch access {
	case TenantRead:
		return slices.Contains(roles, TenantRole(RoleTenantReader, tenant)) || slices.Contains(roles, TenantRole(RoleTenantAdmin, tenant))
	case TenantWrite:
		return slices.Contains(roles, TenantRole(RoleTenantAdmin, tenant))
	}
	return false
}
