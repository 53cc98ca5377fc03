package auth

import "slices"

// Rule is everything the API's guard applies to one method: the access it
// needs, how to find the tenant it concerns in its request, whether each
// call is written to the audit trail, and how often one caller may make it.
type Rule struct {
	Access Access
	Tenant func(req any) string
	Audit  bool
	// Limit throttles each caller of the method; the zero Limit does not.
	Limit Limit
	// Writes returns the top-level Tenant fields a request writes; nil for
	// methods that write no tenant field.
	Writes func(req any) []string
}

// TenantAdminFields are the only fields a tenant-admin may write: what
// cannot widen the tenant's reach. Rotating the PAT (broker.Tenants checks
// it belongs to the tenant's owner) and choosing the probe image (which
// must pass the tenant's own ownership rules) reach nothing new; the owner,
// the credential source, namespaces and selector, registries, granted
// owners, the Secret's name and ServiceAccount patching would, and are an
// admin's.
func TenantAdminFields() []string { return []string{"pat", "probe_image"} }

// ForbiddenFields returns the fields of req that a caller with roles may
// not write: none for an admin, those outside TenantAdminFields for anyone
// else.
func (r Rule) ForbiddenFields(roles []string, req any) []string {
	if r.Writes == nil || slices.Contains(roles, RoleAdmin) {
		return nil
	}
	var forbidden []string
	for _, field := range r.Writes(req) {
		if !slices.Contains(TenantAdminFields(), field) {
			forbidden = append(forbidden, field)
		}
	}
	return forbidden
}

// Limit is a token bucket per caller: PerSecond calls a second, Burst at once.
type Limit struct {
	PerSecond float64
	Burst     int
}

// TenantOf returns the tenant a request concerns, or "".
func (r Rule) TenantOf(req any) string {
	if r.Tenant == nil {
		return ""
	}
	return r.Tenant(req)
}
