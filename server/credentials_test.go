package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/refresh"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// memorySink stands in for Kubernetes: every bound namespace is synced at
// once, and its state kept.
type memorySink struct {
	mu     sync.Mutex
	synced map[string][]broker.NamespaceSync // tenant → its namespaces
}

func (m *memorySink) Bind(context.Context, broker.Tenant) {}

func (m *memorySink) Publish(_ context.Context, t broker.Tenant, p broker.SecretPayload) error {
	var synced []broker.NamespaceSync
	for _, ns := range slices.Sorted(slices.Values(t.Namespaces)) {
		synced = append(synced, broker.NamespaceSync{Namespace: ns, State: broker.SyncSynced, Fingerprint: p.Credential.Fingerprint()})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced[t.ID] = synced
	return nil
}

func (m *memorySink) Namespaces(tenantID string) []broker.NamespaceSync {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.synced[tenantID])
}

func (m *memorySink) Remove(context.Context, string) error { return nil }

// attachRefresher runs the credential service on a Refresher whose Sink is
// a memorySink, until the test ends.
func (in *instance) attachRefresher(t *testing.T) *refresh.Refresher {
	refresher := refresh.New(refresh.Config{Resync: time.Hour}, in.registry, in.github,
		&memorySink{synced: map[string][]broker.NamespaceSync{}}, slog.New(slog.DiscardHandler))
	t.Cleanup(in.creds.Attach(refresher))
	return refresher
}

func (m *memorySink) PublishedAll()                        {}
func (m *memorySink) Report(string, broker.Reason, string) {}

func TestCredentialStatusRefreshAndDockerConfig(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	credentials := credbrokerv1.NewCredentialServiceClient(in.conn)
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("web")}); err != nil {
		t.Fatal(err)
	}

	_, err := credentials.GetCredentialStatus(ctx, &credbrokerv1.GetCredentialStatusRequest{TenantId: "web"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("status on a replica without a refresher: %v, want Unavailable", err)
	}
	_, err = credentials.GetCredentialStatus(ctx, &credbrokerv1.GetCredentialStatusRequest{TenantId: "ghost"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("status of a missing tenant: %v, want NotFound", err)
	}

	in.attachRefresher(t)

	st, err := credentials.RefreshCredential(ctx, &credbrokerv1.RefreshCredentialRequest{TenantId: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetState() != credbrokerv1.CredentialState_CREDENTIAL_STATE_READY || st.GetKind() != credbrokerv1.CredentialKind_CREDENTIAL_KIND_GITHUB_APP ||
		st.GetUsername() != "x-access-token" || st.GetFingerprint() == "" || st.GetExpireTime() == nil || st.GetNextRefreshTime() == nil {
		t.Errorf("status after a refresh: %v", st)
	}
	if len(st.GetNamespaces()) != 2 || st.GetNamespaces()[0].GetState() != credbrokerv1.SyncState_SYNC_STATE_SYNCED {
		t.Errorf("namespaces: %v", st.GetNamespaces())
	}

	code, body := in.do(t, http.MethodGet, "/v1/tenants/web/credential:dockerconfigjson", "")
	if code != http.StatusOK {
		t.Fatalf("dockerconfigjson: %d %v", code, body)
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password string } `json:"auths"`
	}
	if err := json.Unmarshal([]byte(body["dockerConfigJson"].(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	minted := in.gh.Tokens()
	if a := cfg.Auths["ghcr.io"]; a.Username != "x-access-token" || len(minted) != 1 || a.Password != minted[0] {
		t.Errorf("dockerconfigjson auths %+v (minted %d tokens)", cfg.Auths, len(minted))
	}

	// A failed refresh keeps the credential and says why; a suspension is
	// for a person to fix, so the state is FAILED though the token is valid.
	in.gh.SuspendInstallation(acmeInstall)
	st, err = credentials.RefreshCredential(ctx, &credbrokerv1.RefreshCredentialRequest{TenantId: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetState() != credbrokerv1.CredentialState_CREDENTIAL_STATE_FAILED || st.GetFingerprint() == "" ||
		st.GetLastError().GetReason() != credbrokerv1.Reason_REASON_INSTALLATION_SUSPENDED {
		t.Errorf("after a suspended installation: %v", st)
	}
	code, body = in.do(t, http.MethodGet, "/v1/tenants/web/credential", "")
	if code != http.StatusOK || body["state"] != "CREDENTIAL_STATE_FAILED" {
		t.Errorf("REST status: %d %v", code, body)
	}
	if strings.Contains(in.logs.String(), minted[0]) {
		t.Error("the token reached the log")
	}
	if !strings.Contains(in.logs.String(), `"msg":"dockerconfigjson issued"`) {
		t.Error("handing out the dockerconfigjson was not logged")
	}
}
