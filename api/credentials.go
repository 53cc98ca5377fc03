package api

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/credbroker/credbroker/broker/refresh"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// CredentialAPI serves credbroker.v1.CredentialService from the Refresher
// running on this replica. Credentials live in the leader's memory for now:
// a replica that runs no Refresher (a follower, or one without a cluster)
// answers UNAVAILABLE rather than a status it does not know.
type CredentialAPI struct {
	credbrokerv1.UnimplementedCredentialServiceServer
	registry *broker.Tenants
	log      *slog.Logger
	current  atomic.Pointer[refresh.Refresher]
}

// NewCredentialAPI returns the CredentialService.
func NewCredentialAPI(registry *broker.Tenants, log *slog.Logger) *CredentialAPI {
	return &CredentialAPI{registry: registry, log: log}
}

// Attach makes r the Refresher the API answers from, until detach is called
// (when its leadership term ends).
func (a *CredentialAPI) Attach(r *refresh.Refresher) (detach func()) {
	a.current.Store(r)
	return func() { a.current.CompareAndSwap(r, nil) }
}

// refresher resolves the tenant (NOT_FOUND first, whatever the replica) and
// the running Refresher.
func (a *CredentialAPI) refresher(ctx context.Context, tenantID string) (*refresh.Refresher, broker.Tenant, error) {
	if err := requireID("tenant_id", tenantID); err != nil {
		return nil, broker.Tenant{}, err
	}
	t, err := a.registry.Read(ctx, tenantID)
	if err != nil {
		return nil, broker.Tenant{}, toStatus(ctx, a.log, err, "")
	}
	r := a.current.Load()
	if r == nil {
		return nil, broker.Tenant{}, status.Error(codes.Unavailable, "credentials are kept by the leading replica, and this replica does not lead (or has no Kubernetes cluster to sync into)")
	}
	return r, t, nil
}

// GetCredentialStatus implements credbroker.v1.CredentialService.
func (a *CredentialAPI) GetCredentialStatus(ctx context.Context, req *credbrokerv1.GetCredentialStatusRequest) (*credbrokerv1.CredentialStatus, error) {
	r, _, err := a.refresher(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	return statusToProto(r.Status(req.GetTenantId())), nil
}

// RefreshCredential implements credbroker.v1.CredentialService.
func (a *CredentialAPI) RefreshCredential(ctx context.Context, req *credbrokerv1.RefreshCredentialRequest) (*credbrokerv1.CredentialStatus, error) {
	r, t, err := a.refresher(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	st := r.RenewNow(ctx, t)
	a.log.InfoContext(ctx, "credential refreshed on request", slog.String("tenant", req.GetTenantId()), slog.String("state", string(st.State)))
	return statusToProto(st), nil
}

// GetDockerConfig implements credbroker.v1.CredentialService. It hands out
// the secret itself, so every call is logged (with the fingerprint only).
func (a *CredentialAPI) GetDockerConfig(ctx context.Context, req *credbrokerv1.GetDockerConfigRequest) (*credbrokerv1.DockerConfig, error) {
	r, _, err := a.refresher(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	cred, registries, ok := r.Current(req.GetTenantId())
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "tenant "+req.GetTenantId()+" has no credential yet; see its credential status for why")
	}
	a.log.InfoContext(ctx, "dockerconfigjson issued", slog.String("tenant", req.GetTenantId()), slog.String("fingerprint", cred.Fingerprint()))
	return &credbrokerv1.DockerConfig{
		DockerConfigJson: string(broker.DockerConfigJSON(registries, cred)),
		Fingerprint:      cred.Fingerprint(),
		ExpireTime:       timestamp(cred.ExpiresAt),
	}, nil
}

func statusToProto(st broker.CredentialStatus) *credbrokerv1.CredentialStatus {
	p := &credbrokerv1.CredentialStatus{
		TenantId:        st.TenantID,
		Kind:            credentialKinds.proto(st.Kind),
		State:           credentialStates.proto(st.State),
		Fingerprint:     st.Fingerprint,
		Username:        st.Username,
		ExpireTime:      timestamp(st.ExpiresAt),
		LastRefreshTime: timestamp(st.LastRefresh),
		NextRefreshTime: timestamp(st.NextRefresh),
		LastError:       errorToProto(st.LastError),
	}
	if pr := st.Probe; pr != nil {
		p.Probe = &credbrokerv1.ProbeResult{Image: pr.Image, Pulls: pr.Pulls, Error: errorToProto(pr.Error), Time: timestamp(pr.Time)}
	}
	for _, ns := range st.Namespaces {
		p.Namespaces = append(p.Namespaces, &credbrokerv1.NamespaceSync{
			Namespace:   ns.Namespace,
			State:       syncStates.proto(ns.State),
			Fingerprint: ns.Fingerprint,
			SyncTime:    timestamp(ns.SyncTime),
			Error:       errorToProto(nsError(ns)),
		})
	}
	for _, r := range st.Registries {
		p.Registries = append(p.Registries, &credbrokerv1.RegistryStatus{
			Host:          r.Host,
			Username:      r.Username,
			Fingerprint:   r.Fingerprint,
			CheckImage:    r.CheckImage,
			ExpireTime:    timestamp(r.ExpiresAt),
			State:         registryStates.proto(r.State),
			LastCheckTime: timestamp(r.LastCheck),
			NextCheckTime: timestamp(r.NextCheck),
			Error:         errorToProto(r.Error),
		})
	}
	return p
}

func nsError(ns broker.NamespaceSync) *broker.CredentialError {
	if ns.Reason == "" && ns.Message == "" {
		return nil
	}
	return &broker.CredentialError{Reason: ns.Reason, Message: ns.Message, Time: ns.SyncTime}
}

func errorToProto(e *broker.CredentialError) *credbrokerv1.CredentialError {
	if e == nil {
		return nil
	}
	return &credbrokerv1.CredentialError{
		Reason:  reasons.proto(e.Reason),
		Message: e.Message,
		Time:    timestamp(e.Time),
	}
}
