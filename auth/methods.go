package auth

import credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"

// Rule is what a method needs, how to find the tenant it concerns in its
// request, and whether each call is written to the audit trail.
type Rule struct {
	Access Access
	Tenant func(req any) string
	Audit  bool
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

// Methods is the authorization table of the API, by full gRPC method name.
// docs/authorization.md says the same in a table that a test checks against
// this one, method by method and role by role. A method missing here is
// refused to everyone.
func Methods() map[string]Rule {
	return map[string]Rule{
		"/credbroker.v1.TenantService/CreateTenant":            {Access: Admin, Audit: true},
		"/credbroker.v1.TenantService/GetTenant":               {Access: TenantRead, Tenant: id},
		"/credbroker.v1.TenantService/ListTenants":             {Access: Admin},
		"/credbroker.v1.TenantService/UpdateTenant":            {Access: TenantWrite, Tenant: updatedTenant, Audit: true},
		"/credbroker.v1.TenantService/DeleteTenant":            {Access: Admin, Tenant: id, Audit: true},
		"/credbroker.v1.CredentialService/GetCredentialStatus": {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.CredentialService/RefreshCredential":   {Access: TenantWrite, Tenant: tenantID, Audit: true},
		"/credbroker.v1.CredentialService/GetDockerConfig":     {Access: Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.ImageService/ValidateImage":            {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.ImageService/ValidatePod":              {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.EventService/ListEvents":               {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.EventService/WatchEvents":              {Access: TenantRead, Tenant: tenantID},
	}
}
