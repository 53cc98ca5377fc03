package api

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// Page sizes of ListTenants.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// TenantAPI serves credbroker.v1.TenantService from broker.Tenants.
type TenantAPI struct {
	credbrokerv1.UnimplementedTenantServiceServer
	registry *broker.Tenants
	log      *slog.Logger
}

// NewTenantAPI returns the TenantService over registry.
func NewTenantAPI(registry *broker.Tenants, log *slog.Logger) *TenantAPI {
	return &TenantAPI{registry: registry, log: log}
}

// CreateTenant implements credbroker.v1.TenantService.
func (a *TenantAPI) CreateTenant(ctx context.Context, req *credbrokerv1.CreateTenantRequest) (*credbrokerv1.Tenant, error) {
	if req.GetTenant() == nil {
		return nil, invalidArgument("", broker.FieldViolation{Field: "tenant", Description: "required"})
	}
	t, created, err := a.registry.Create(ctx, tenantFromProto(req.GetTenant()))
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "tenant.")
	}
	if created {
		a.log.InfoContext(ctx, "tenant created", slog.String("tenant", t.ID), slog.String("owner", t.Owner.Login))
	}
	return tenantToProto(t), nil
}

// GetTenant implements credbroker.v1.TenantService.
func (a *TenantAPI) GetTenant(ctx context.Context, req *credbrokerv1.GetTenantRequest) (*credbrokerv1.Tenant, error) {
	if err := requireID("id", req.GetId()); err != nil {
		return nil, err
	}
	t, err := a.registry.Read(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	return tenantToProto(t), nil
}

// ListTenants implements credbroker.v1.TenantService. The page token is the
// last id of the previous page, encoded so that clients treat it as opaque.
func (a *TenantAPI) ListTenants(ctx context.Context, req *credbrokerv1.ListTenantsRequest) (*credbrokerv1.ListTenantsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalidArgument("", broker.FieldViolation{Field: "page_size", Description: "must not be negative"})
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	after := ""
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(validation.IsDNS1123Label(string(raw))) > 0 {
			return nil, invalidArgument("", broker.FieldViolation{Field: "page_token", Description: "not a token from a previous ListTenants response"})
		}
		after = string(raw)
	}
	page, next, err := a.registry.List(ctx, after, size)
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	resp := &credbrokerv1.ListTenantsResponse{Tenants: make([]*credbrokerv1.Tenant, len(page))}
	for i, t := range page {
		resp.Tenants[i] = tenantToProto(t)
	}
	if next != "" {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	return resp, nil
}

// UpdateTenant implements credbroker.v1.TenantService.
func (a *TenantAPI) UpdateTenant(ctx context.Context, req *credbrokerv1.UpdateTenantRequest) (*credbrokerv1.Tenant, error) {
	in := req.GetTenant()
	if in == nil {
		return nil, invalidArgument("", broker.FieldViolation{Field: "tenant", Description: "required"})
	}
	if err := requireID("tenant.id", in.GetId()); err != nil {
		return nil, err
	}
	paths, err := updatePaths(in, req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	t, err := a.registry.Update(ctx, in.GetId(), in.GetEtag(), func(cur broker.Tenant) (broker.Tenant, error) {
		// The guard lets a tenant-admin rotate a PAT; turning an App tenant
		// into a PAT tenant changes its credential source, which is an
		// admin's to do.
		if restricted(ctx) && cur.PAT == nil && slices.ContainsFunc(paths, func(p string) bool { return p == "pat" || strings.HasPrefix(p, "pat.") }) {
			return broker.Tenant{}, errSourceChange
		}
		p := tenantToProto(cur)
		for _, path := range paths {
			copyField(p.ProtoReflect(), in.ProtoReflect(), strings.Split(path, "."))
		}
		next := tenantFromProto(p)
		next.RegistryCredentials = cur.RegistryCredentials
		return next, nil
	})
	if err != nil {
		return nil, toStatus(ctx, a.log, err, "tenant.")
	}
	a.log.InfoContext(ctx, "tenant updated", slog.String("tenant", t.ID), slog.Any("fields", paths))
	return tenantToProto(t), nil
}

// errSourceChange refuses a tenant-admin's change of credential source.
var errSourceChange = status.Error(codes.PermissionDenied, "permission denied: only an admin may change the credential source (this tenant uses a GitHub App)")

// DeleteTenant implements credbroker.v1.TenantService.
func (a *TenantAPI) DeleteTenant(ctx context.Context, req *credbrokerv1.DeleteTenantRequest) (*emptypb.Empty, error) {
	if err := requireID("id", req.GetId()); err != nil {
		return nil, err
	}
	if err := a.registry.Delete(ctx, req.GetId(), req.GetEtag()); err != nil {
		return nil, toStatus(ctx, a.log, err, "")
	}
	a.log.InfoContext(ctx, "tenant deleted", slog.String("tenant", req.GetId()))
	return &emptypb.Empty{}, nil
}

func requireID(field, id string) error {
	if id == "" {
		return invalidArgument("", broker.FieldViolation{Field: field, Description: "required"})
	}
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return invalidArgument("", broker.FieldViolation{Field: field, Description: "not a tenant id: " + strings.Join(errs, "; ")})
	}
	return nil
}

// Fields of a Tenant that an update may not write: identity and bookkeeping.
// etag is the update's precondition, not a value to store.
// registry_credentials have methods of their own.
var readOnlyTenantFields = []string{"id", "name", "create_time", "update_time", "etag", "registry_credentials"}

// UpdatedFields returns the top-level Tenant fields an UpdateTenant request
// writes, for the guard to decide from the request who may make it; a
// request whose mask is invalid writes nothing (it is refused later).
func UpdatedFields(req *credbrokerv1.UpdateTenantRequest) []string {
	paths, err := updatePaths(req.GetTenant(), req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil
	}
	var fields []string
	for _, path := range paths {
		top, _, _ := strings.Cut(path, ".")
		if !slices.Contains(fields, top) {
			fields = append(fields, top)
		}
	}
	return fields
}

// updatePaths returns the field paths an update writes. An empty mask means
// every mutable top-level field that is set in the request (AIP-134); "*"
// means all of them, so unset ones are cleared.
func updatePaths(in *credbrokerv1.Tenant, mask []string) ([]string, error) {
	fields := in.ProtoReflect().Descriptor().Fields()
	var all []string
	for i := range fields.Len() {
		if name := string(fields.Get(i).Name()); !slices.Contains(readOnlyTenantFields, name) {
			all = append(all, name)
		}
	}
	switch {
	case len(mask) == 0:
		var set []string
		for _, name := range all {
			if in.ProtoReflect().Has(fields.ByName(protoreflect.Name(name))) {
				set = append(set, name)
			}
		}
		return set, nil
	case slices.Equal(mask, []string{"*"}):
		return all, nil
	}
	var paths []string
	for _, path := range mask {
		top, _, _ := strings.Cut(path, ".")
		switch {
		case top == "etag" || (top == "id" && path == "id"):
			// The gateway derives the mask from the body, which may carry the
			// etag precondition and the (unchangeable) id.
			continue
		case top == "registry_credentials":
			return nil, invalidArgument("", broker.FieldViolation{Field: "update_mask", Description: fmt.Sprintf("%q is changed with AddRegistryCredential, RotateRegistryCredential and RemoveRegistryCredential", path)})
		case slices.Contains(readOnlyTenantFields, top):
			return nil, invalidArgument("", broker.FieldViolation{Field: "update_mask", Description: fmt.Sprintf("%q cannot be updated", path)})
		case !validPath(in.ProtoReflect().Descriptor(), strings.Split(path, ".")):
			return nil, invalidArgument("", broker.FieldViolation{Field: "update_mask", Description: fmt.Sprintf("%q is not a field of Tenant", path)})
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// validPath reports whether path names a field, descending only through
// singular message fields.
func validPath(md protoreflect.MessageDescriptor, path []string) bool {
	fd := md.Fields().ByName(protoreflect.Name(path[0]))
	switch {
	case fd == nil:
		return false
	case len(path) == 1:
		return true
	case fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap():
		return false
	}
	return validPath(fd.Message(), path[1:])
}

// copyField sets the field at path in dst to its value in src, clearing it
// when src does not set it. Setting a member of a oneof clears the others.
func copyField(dst, src protoreflect.Message, path []string) {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if len(path) > 1 {
		copyField(dst.Mutable(fd).Message(), src.Get(fd).Message(), path[1:])
		return
	}
	if src.Has(fd) {
		dst.Set(fd, src.Get(fd))
	} else {
		dst.Clear(fd)
	}
}

func tenantFromProto(p *credbrokerv1.Tenant) broker.Tenant {
	t := broker.Tenant{
		ID: p.GetId(),
		Owner: broker.Owner{
			Login: p.GetOwner().GetLogin(),
			ID:    p.GetOwner().GetId(),
			Type:  ownerTypes.domain(p.GetOwner().GetType()),
		},
		Namespaces:           p.GetNamespaces(),
		NamespaceSelector:    p.GetNamespaceSelector(),
		Registries:           p.GetRegistries(),
		SecretName:           p.GetSecretName(),
		ProbeImage:           p.GetProbeImage(),
		AllowedOwners:        p.GetAllowedOwners(),
		PatchServiceAccounts: p.GetPatchServiceAccounts(),
		PullMode:             pullModeFromProto(p.GetPullMode()),
		RegistryPush:         p.GetRegistryPush(),
	}
	switch c := p.GetCredential().(type) {
	case *credbrokerv1.Tenant_GithubApp:
		t.App = &broker.GitHubApp{
			InstallationID: c.GithubApp.GetInstallationId(),
			Permissions:    c.GithubApp.GetPermissions(),
			Repositories:   c.GithubApp.GetRepositories(),
		}
	case *credbrokerv1.Tenant_Pat:
		t.PAT = &broker.PAT{Token: c.Pat.GetToken()}
	}
	return t
}

// tenantToProto never sets pat.token: the plaintext is not kept, and would
// not be returned if it were.
func tenantToProto(t broker.Tenant) *credbrokerv1.Tenant {
	p := &credbrokerv1.Tenant{
		Id:   t.ID,
		Name: "tenants/" + t.ID,
		Owner: &credbrokerv1.Owner{
			Login: t.Owner.Login,
			Id:    t.Owner.ID,
			Type:  ownerTypes.proto(t.Owner.Type),
		},
		Namespaces:           slices.Clone(t.Namespaces),
		NamespaceSelector:    t.NamespaceSelector,
		Registries:           slices.Clone(t.Registries),
		SecretName:           t.SecretName,
		ProbeImage:           t.ProbeImage,
		AllowedOwners:        slices.Clone(t.AllowedOwners),
		PatchServiceAccounts: t.PatchServiceAccounts,
		PullMode:             pullModes.proto(cmp.Or(t.PullMode, broker.PullSecret)),
		RegistryPush:         t.RegistryPush,
		CreateTime:           timestamp(t.CreateTime),
		UpdateTime:           timestamp(t.UpdateTime),
		Etag:                 t.Version,
	}
	switch {
	case t.App != nil:
		p.Credential = &credbrokerv1.Tenant_GithubApp{GithubApp: &credbrokerv1.GitHubAppSource{
			InstallationId: t.App.InstallationID,
			Permissions:    maps.Clone(t.App.Permissions),
			Repositories:   slices.Clone(t.App.Repositories),
		}}
	case t.PAT != nil:
		p.Credential = &credbrokerv1.Tenant_Pat{Pat: &credbrokerv1.PATSource{Fingerprint: t.PAT.Fingerprint}}
	}
	for _, c := range t.RegistryCredentials {
		p.RegistryCredentials = append(p.RegistryCredentials, &credbrokerv1.RegistryCredential{
			Host:        c.Host,
			Username:    c.Username,
			Fingerprint: c.Fingerprint,
			Owners:      slices.Clone(c.Owners),
			CheckImage:  c.CheckImage,
			ExpireTime:  timestamp(c.ExpiresAt),
		})
	}
	return p
}

// pullModeFromProto keeps a number outside the enum visible, so that
// validation names it rather than taking it for the default.
func pullModeFromProto(m credbrokerv1.PullMode) broker.PullMode {
	if m == credbrokerv1.PullMode_PULL_MODE_UNSPECIFIED {
		return ""
	}
	if d := pullModes.domain(m); d != "" {
		return d
	}
	return broker.PullMode(m.String())
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
