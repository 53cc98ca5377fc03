package auth

import credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"

// Rule is everything the API's guard applies to one method: the access it
// needs, how to find the tenant it concerns in its request, whether each
// call is written to the audit trail, and how often one caller may make it.
type Rule struct {
	Access Access
	Tenant func(req any) string
	Audit  bool
	// Limit throttles each caller of the method; the zero Limit does not.
	Limit Limit
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
		"/credbroker.v1.TenantService/CreateTenant":            {Access: Admin, Audit: true},
		"/credbroker.v1.TenantService/GetTenant":               {Access: TenantRead, Tenant: id},
		"/credbroker.v1.TenantService/ListTenants":             {Access: Admin},
		"/credbroker.v1.TenantService/UpdateTenant":            {Access: TenantWrite, Tenant: updatedTenant, Audit: true},
		"/credbroker.v1.TenantService/DeleteTenant":            {Access: Admin, Tenant: id, Audit: true},
		"/credbroker.v1.CredentialService/GetCredentialStatus": {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.CredentialService/RefreshCredential":   {Access: TenantWrite, Tenant: tenantID, Audit: true, Limit: Limit{PerSecond: 0.2, Burst: 5}},
		"/credbroker.v1.CredentialService/GetDockerConfig":     {Access: Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.ImageService/ValidateImage":            {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.ImageService/ValidatePod":              {Access: TenantRead, Tenant: tenantID, Limit: Limit{PerSecond: 200, Burst: 400}},
		"/credbroker.v1.EventService/ListEvents":               {Access: TenantRead, Tenant: tenantID},
		"/credbroker.v1.EventService/WatchEvents":              {Access: TenantRead, Tenant: tenantID},
	}
}
