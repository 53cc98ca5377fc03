package api

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// AddRegistryCredential implements credbroker.v1.TenantService.
func (a *TenantAPI) AddRegistryCredential(ctx context.Context, req *credbrokerv1.AddRegistryCredentialRequest) (*credbrokerv1.Tenant, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	in := req.GetRegistryCredential()
	if in == nil {
		return nil, invalidArgument("", broker.FieldViolation{Field: "registry_credential", Description: "required"})
	}
	t, err := a.registry.AddRegistryCredential(ctx, req.GetTenantId(), req.GetEtag(), broker.RegistryCredential{
		Host:       in.GetHost(),
		Username:   in.GetUsername(),
		Password:   in.GetPassword(),
		Owners:     in.GetOwners(),
		CheckImage: in.GetCheckImage(),
		ExpiresAt:  timeOf(in.GetExpireTime()),
	})
	if err != nil {
		return nil, entryStatus(ctx, a.log, err, "registry_credential.")
	}
	a.log.InfoContext(ctx, "registry credential added", slog.String("tenant", t.ID), slog.String("registry", in.GetHost()))
	return tenantToProto(t), nil
}

// RotateRegistryCredential implements credbroker.v1.TenantService.
func (a *TenantAPI) RotateRegistryCredential(ctx context.Context, req *credbrokerv1.RotateRegistryCredentialRequest) (*credbrokerv1.Tenant, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	if req.GetHost() == "" {
		return nil, invalidArgument("", broker.FieldViolation{Field: "host", Description: "required"})
	}
	t, err := a.registry.RotateRegistryCredential(ctx, req.GetTenantId(), req.GetEtag(), broker.RegistryCredential{
		Host:      req.GetHost(),
		Username:  req.GetUsername(),
		Password:  req.GetPassword(),
		ExpiresAt: timeOf(req.GetExpireTime()),
	})
	if err != nil {
		return nil, entryStatus(ctx, a.log, err, "")
	}
	a.log.InfoContext(ctx, "registry credential rotated", slog.String("tenant", t.ID), slog.String("registry", req.GetHost()))
	return tenantToProto(t), nil
}

// RemoveRegistryCredential implements credbroker.v1.TenantService.
func (a *TenantAPI) RemoveRegistryCredential(ctx context.Context, req *credbrokerv1.RemoveRegistryCredentialRequest) (*credbrokerv1.Tenant, error) {
	if err := requireID("tenant_id", req.GetTenantId()); err != nil {
		return nil, err
	}
	if req.GetHost() == "" {
		return nil, invalidArgument("", broker.FieldViolation{Field: "host", Description: "required"})
	}
	t, err := a.registry.RemoveRegistryCredential(ctx, req.GetTenantId(), req.GetEtag(), req.GetHost())
	if err != nil {
		return nil, entryStatus(ctx, a.log, err, "")
	}
	a.log.InfoContext(ctx, "registry credential removed", slog.String("tenant", t.ID), slog.String("registry", req.GetHost()))
	return tenantToProto(t), nil
}

// entryIndex is the "[k]." that names an entry within the tenant.
var entryIndex = regexp.MustCompile(`^\[\d+\]\.?`)

// entryStatus is toStatus for a call about one registry credential: the
// tenant's validation names the entry's fields within the tenant
// (registry_credentials[2].host), the request names them with prefix;
// other fields are the stored tenant's.
func entryStatus(ctx context.Context, log *slog.Logger, err error, prefix string) error {
	var invalid *broker.InvalidError
	if !errors.As(err, &invalid) {
		return toStatus(ctx, log, err, "")
	}
	vs := make([]broker.FieldViolation, len(invalid.Violations))
	for i, v := range invalid.Violations {
		switch rest, ok := strings.CutPrefix(v.Field, "registry_credentials"); {
		case ok:
			v.Field = strings.TrimSuffix(prefix+entryIndex.ReplaceAllString(rest, ""), ".")
		case v.Field == "password" || v.Field == "expire_time":
			v.Field = prefix + v.Field
		default:
			v.Field = "tenant." + v.Field
		}
		vs[i] = v
	}
	return invalidArgument("", vs...)
}

// timeOf is the time of a timestamp, zero when it is unset.
func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
