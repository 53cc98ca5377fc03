package auth

import (
	"slices"

	"github.com/credbroker/credbroker/api"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

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
// cannot widen the tenant's reach. Rotating the PAT (the Registry checks
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

func tenantID(req any) string {
	if r, ok := req.(interface{ GetTenantId() string }); ok {
		return r.GetTenantId()
	}
	return ""
}

func id(req any) string {
	if r, ok := req.(interface{ GetId() string }); ok {
		return r.GetId()
	}
	return ""
}

func updatedTenant(req any) string {
	if r, ok := req.(*credbrokerv1.UpdateTenantRequest); ok {
		return r.GetTenant().GetId()
	}
	return ""
}

func createdTenant(req any) string {
	if r, ok := req.(*credbrokerv1.CreateTenantRequest); ok {
		return r.GetTenant().GetId()
	}
	return ""
}

func updatedFields(req any) []string {
	if r, ok := req.(*credbrokerv1.UpdateTenantRequest); ok {
		return api.UpdatedFields(r)
	}
	return nil
}

// Methods is the access table of the API, by full gRPC method name: the one
// place that says who may call what, which tenant a call concerns, what is
// audited and what is throttled. docs/authorization.md says the same in a
// table that a test checks against this one, method by method and role by
// role. A method missing here is refused to everyone.
//
// Refreshes are throttled because each is a call to GitHub and a registry;
// pod validations because they are the admission hot path (cheap, not free).
func Methods() map[string]Rule {
	return map[string]Rule{
		"/credbroker.v1.TenantService/CreateTenant": {Access: Admin, Tenant: createdTenant, Audit: true},
		"/credbroker.v1.TenantService/GetTenant":    {Access: TenantRead, Tenant: id},
		"/credbroker.v1.TenantService/ListTenants":  {Access: Admin},
		"/credbroker.v1.TenantService/UpdateTenant": {Access: TenantWrite, Tenant: updatedTenant, Audit: true, Writes: updatedFields},
		"/credbroker.v1.TenantService/DeleteTenant": {Access: Admin, Tenant: id, Audit: true},
		// Adding a registry widens what the tenant's Pods may run (its
		// owners); rotating only replaces a password, as for a PAT.
		"/credbroker.v1.TenantService/AddRegistryCredential":    {Access: Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.TenantService/RotateRegistryCredential": {Access: TenantWrite, Tenant: tenantID, Audit: true},
		"/credbroker.v1.TenantService/RemoveRegistryCredential": {Access: Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.CredentialService/GetCredentialStatus":  {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.CredentialService/RefreshCredential":    {Access: TenantWrite, Tenant: tenantID, Audit: true, Limit: Limit{PerSecond: 0.2, Burst: 5}},
		"/credbroker.v1.CredentialService/GetDockerConfig":      {Access: Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.ImageService/ValidateImage":             {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.ImageService/ValidatePod":               {Access: TenantRead, Tenant: tenantID, Limit: Limit{PerSecond: 200, Burst: 400}},
		"/credbroker.v1.EventService/ListEvents":                {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.EventService/WatchEvents":               {Access: TenantRead, Tenant: tenantID},
		// The Pod's token is reviewed by the method (one review per new token,
		// limited on its own); what it hands out is audited by the broker.
		"/credbroker.v1.PullCredentialService/ExchangeServiceAccountToken": {Access: SelfAuthenticated},
	}
}
