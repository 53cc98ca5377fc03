package api

import (
	"github.com/credbroker/credbroker/auth"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// Methods is the access table of the API, by full gRPC method name: the one
// place that says who may call what, which tenant a call concerns, what is
// audited and what is throttled. docs/authorization.md says the same in a
// table that a test checks against this one, method by method and role by
// role. A method missing here is refused to everyone.
//
// Refreshes are throttled because each is a call to GitHub and a registry;
// pod validations because they are the admission hot path (cheap, not free).
func Methods() map[string]auth.Rule {
	return map[string]auth.Rule{
		"/credbroker.v1.TenantService/CreateTenant": {Access: auth.Admin, Tenant: createdTenant, Audit: true},
		"/credbroker.v1.TenantService/GetTenant":    {Access: auth.TenantRead, Tenant: requestID},
		"/credbroker.v1.TenantService/ListTenants":  {Access: auth.Admin},
		"/credbroker.v1.TenantService/UpdateTenant": {Access: auth.TenantWrite, Tenant: updatedTenant, Audit: true, Writes: updatedFields},
		"/credbroker.v1.TenantService/DeleteTenant": {Access: auth.Admin, Tenant: requestID, Audit: true},
		// Adding a registry widens what the tenant's Pods may run (its
		// owners); rotating only replaces a password, as for a PAT.
		"/credbroker.v1.TenantService/AddRegistryCredential":    {Access: auth.Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.TenantService/RotateRegistryCredential": {Access: auth.TenantWrite, Tenant: tenantID, Audit: true},
		"/credbroker.v1.TenantService/RemoveRegistryCredential": {Access: auth.Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.CredentialService/GetCredentialStatus":  {Access: auth.TenantRead, Tenant: tenantID},
		"/credbroker.v1.CredentialService/RefreshCredential":    {Access: auth.TenantWrite, Tenant: tenantID, Audit: true, Limit: auth.Limit{PerSecond: 0.2, Burst: 5}},
		"/credbroker.v1.CredentialService/GetDockerConfig":      {Access: auth.Admin, Tenant: tenantID, Audit: true},
		"/credbroker.v1.ImageService/ValidateImage":             {Access: auth.TenantRead, Tenant: tenantID},
		"/credbroker.v1.ImageService/ValidatePod":               {Access: auth.TenantRead, Tenant: tenantID, Limit: auth.Limit{PerSecond: 200, Burst: 400}},
		"/credbroker.v1.EventService/ListEvents":                {Access: auth.TenantRead, Tenant: tenantID},
		"/credbroker.v1.EventService/WatchEvents":               {Access: auth.TenantRead, Tenant: tenantID},
		// The Pod's token is reviewed by the method (one review per new token,
		// limited on its own); what it hands out is audited by the broker.
		"/credbroker.v1.PullCredentialService/ExchangeServiceAccountToken": {Access: auth.SelfAuthenticated},
	}
}

func tenantID(req any) string {
	if r, ok := req.(interface{ GetTenantId() string }); ok {
		return r.GetTenantId()
	}
	return ""
}

func requestID(req any) string {
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
		return UpdatedFields(r)
	}
	return nil
}
