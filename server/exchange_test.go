package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/exchange"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// podTokens stands in for the API server's TokenReview (tested against a
// real one in k8ssync and e2e).
type podTokens map[string]broker.PodIdentity

func (p podTokens) PodOf(_ context.Context, token string) (broker.PodIdentity, error) {
	switch token {
	case "outage":
		return broker.PodIdentity{}, broker.ErrUnavailable
	case "unbound":
		return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenNotPodBound, Msg: "bound to no Pod"}
	}
	if pod, ok := p[token]; ok {
		return pod, nil
	}
	return broker.PodIdentity{}, &broker.DeniedError{Denial: broker.DenyTokenRejected, Msg: "the API server does not accept the token"}
}

// namespaceOwners is a namespace → tenant map, filled while the server
// runs.
type namespaceOwners struct {
	mu sync.RWMutex
	m  map[string]broker.Tenant
}

func (o *namespaceOwners) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	t, ok := o.m[ns]
	return t, ok, nil
}

func (o *namespaceOwners) set(ns string, t broker.Tenant) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[ns] = t
}

// Passwords of tenant web's registry credentials (startExchange).
const (
	webQuayPassword   = "quay-s3cret-of-web"
	webMirrorPassword = "mirror-s3cret-of-web"
)

// startExchange serves the exchange through the Guard, with the shared
// mirrors (testenv.ImageMirrors): tenant web (PROVIDER, namespace
// web-prod, acme-bot's PAT published, registered through the API with
// registry credentials for quay.io, owner acme, and for the path-style
// mirror mirror.example.com; none for the host-style mirror
// ghcr-mirror.example.com) and tenant shop (BOTH, namespace shop, nothing
// published yet); tokens web-pod, shop-pod and free-pod (of a Pod in an
// unbound namespace).
func startExchange(tb testing.TB, log *slog.Logger) (*instance, credbrokerv1.PullCredentialServiceClient) {
	tb.Helper()
	ctx := context.Background()
	pending := broker.Tenant{ID: "shop", Owner: broker.Owner{Login: "shop", ID: 5}, Registries: []string{"ghcr.io"}, PullMode: broker.PullBoth}
	sealer, err := broker.NewSealer(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	rules, err := broker.NewImageRules(nil, testenv.ImageMirrors)
	if err != nil {
		tb.Fatal(err)
	}
	pubs := exchange.NewPublications(exchange.NewMemoryPublications(), sealer)
	owners := &namespaceOwners{m: map[string]broker.Tenant{"shop": pending}}
	exchanger := exchange.New(owners, pubs, exchange.Config{Images: rules}, log)
	tokens := podTokens{
		"web-pod":  {Namespace: "web-prod", ServiceAccount: "default", Pod: "app-1"},
		"shop-pod": {Namespace: "shop", ServiceAccount: "default", Pod: "cart-1"},
		"free-pod": {Namespace: "elsewhere", ServiceAccount: "default", Pod: "x"},
	}
	in := start(tb, tb.TempDir(), server.Services{Exchange: api.NewExchangeAPI(tokens, exchanger, log)}, withGuard(nil))
	// Registered as a platform would, so that the registry credentials are
	// sealed by broker.Tenants with the replicas' key.
	if _, _, err := in.registry.Create(ctx, broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: acmeOrgID, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: 42}, Namespaces: []string{"web-prod"}, PullMode: broker.PullProvider}); err != nil {
		tb.Fatal(err)
	}
	for _, c := range []struct {
		entry    broker.RegistryCredential
		password string
	}{
		{broker.RegistryCredential{Host: "quay.io", Username: "acme+puller", Owners: []string{"acme"}}, webQuayPassword},
		{broker.RegistryCredential{Host: "mirror.example.com", Username: "acme-mirror"}, webMirrorPassword},
	} {
		c.entry.Password = c.password
		if _, err := in.registry.AddRegistryCredential(ctx, "web", "", c.entry); err != nil {
			tb.Fatal(err)
		}
	}
	web, err := in.registry.Get(ctx, "web")
	if err != nil {
		tb.Fatal(err)
	}
	if err := pubs.Put(ctx, web, broker.Credential{Kind: broker.KindPAT, Username: "acme-bot", Token: acmeBotPAT}); err != nil {
		tb.Fatal(err)
	}
	owners.set("web-prod", web)
	return in, credbrokerv1.NewPullCredentialServiceClient(in.conn)
}

// TestTheExchangeOverGRPCAndREST: the one method the Guard lets through
// without an identity answers from the request's token alone, with the
// same codes over both protocols, and names the field of bad input. Each
// registry host gets its own credential: a Pod asking for quay.io gets
// quay's, never the GitHub token; a host the tenant has no credential for
// is denied NO_REGISTRY_CREDENTIAL; a path-style mirror's answer is keyed
// to the owner.
func TestTheExchangeOverGRPCAndREST(t *testing.T) {
	ctx := context.Background()
	in, client := startExchange(t, slog.New(slog.NewTextHandler(io.Discard, nil)))

	tests := []struct {
		name        string
		token       string
		image       string
		wantCode    codes.Code
		wantHTTP    int
		wantSays    string // the field of an InvalidArgument, else the ErrorInfo reason
		wantPrefix  string
		wantSecret  string
		wantNoOther bool
	}{
		{"the tenant's own image", "web-pod", "ghcr.io/acme/api", codes.OK, http.StatusOK, "", "ghcr.io/acme", acmeBotPAT, true},
		{"no token", "", "ghcr.io/acme/api", codes.InvalidArgument, http.StatusBadRequest, "service_account_token", "", "", false},
		{"no image", "web-pod", "", codes.InvalidArgument, http.StatusBadRequest, "image", "", "", false},
		{"a token no JWT is that long", strings.Repeat("x", 17<<10), "ghcr.io/acme/api", codes.InvalidArgument, http.StatusBadRequest, "service_account_token", "", "", false},
		{"a token the API server refuses", "forged", "ghcr.io/acme/api", codes.Unauthenticated, http.StatusUnauthorized, "TOKEN_REJECTED", "", "", false},
		{"a token bound to no Pod", "unbound", "ghcr.io/acme/api", codes.Unauthenticated, http.StatusUnauthorized, "TOKEN_NOT_POD_BOUND", "", "", false},
		{"another owner's image", "web-pod", "ghcr.io/shop/cart", codes.PermissionDenied, http.StatusForbidden, "IMAGE_NOT_ALLOWED", "", "", false},
		{"an unbound namespace", "free-pod", "ghcr.io/acme/api", codes.PermissionDenied, http.StatusForbidden, "NAMESPACE_NOT_BOUND", "", "", false},
		{"nothing published yet", "shop-pod", "ghcr.io/shop/cart", codes.FailedPrecondition, http.StatusBadRequest, "CREDENTIAL_NOT_READY", "", "", false},
		{"the API server down", "outage", "ghcr.io/acme/api", codes.Unavailable, http.StatusServiceUnavailable, "", "", "", false},
		{"quay.io, where the tenant has a credential: quay's, never the GitHub token", "web-pod", "quay.io/acme/api:1", codes.OK, http.StatusOK, "", "quay.io/acme", webQuayPassword, true},
		{"a host the tenant has no credential for: denied, named", "web-pod", "ghcr-mirror.example.com/acme/api", codes.PermissionDenied, http.StatusForbidden, "NO_REGISTRY_CREDENTIAL", "", "", false},
		{"a path-style mirror: its credential, keyed to the owner", "web-pod", "mirror.example.com/ghcr.io/acme/api", codes.OK, http.StatusOK, "", "mirror.example.com/ghcr.io/acme", webMirrorPassword, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resp, err := client.ExchangeServiceAccountToken(cctx, &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: tc.token, Image: tc.image})
			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Fatalf("gRPC: %v %s, want %v", st.Code(), st.Message(), tc.wantCode)
			}
			if tc.wantSays != "" && !detailSays(st, tc.wantSays) {
				t.Errorf("gRPC: details %v do not name %s", st.Details(), tc.wantSays)
			}
			if err == nil {
				got := resp.GetAuth()
				if len(got) != 1 || got[tc.wantPrefix].GetPassword() != tc.wantSecret || resp.GetCacheDuration().AsDuration() != broker.DefaultProviderCache {
					t.Errorf("gRPC: %v", resp)
				}
			}
			if strings.Contains(st.Message(), acmeBotPAT) || strings.Contains(st.Message(), "s3cret") {
				t.Error("an error carries a password")
			}
			body := `{"serviceAccountToken":"` + tc.token + `","image":"` + tc.image + `"}`
			code, out := in.do(t, http.MethodPost, "/v1/pullcredentials:exchange", body)
			if code != tc.wantHTTP {
				t.Fatalf("REST: %d %v, want %d", code, out, tc.wantHTTP)
			}
			if code == http.StatusOK {
				auth, _ := out["auth"].(map[string]any)
				entry, _ := auth[tc.wantPrefix].(map[string]any)
				if entry["password"] != tc.wantSecret || out["tenantId"] != "web" || len(auth) != 1 {
					t.Errorf("REST: %v", out)
				}
			} else if raw, _ := json.Marshal(out); tc.wantSays != "" && !strings.Contains(string(raw), tc.wantSays) {
				t.Errorf("REST: %s does not name %s", raw, tc.wantSays)
			}
		})
	}
}

// detailSays reports whether a status names want as a field violation or
// an ErrorInfo reason.
func detailSays(st *status.Status, want string) bool {
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				if v.GetField() == want {
					return true
				}
			}
		case *errdetails.ErrorInfo:
			if d.GetReason() == want {
				return true
			}
		}
	}
	return false
}
