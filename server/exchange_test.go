package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/broker"
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

// namespaceOwners is a fixed namespace → tenant map.
type namespaceOwners map[string]broker.Tenant

func (o namespaceOwners) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	t, ok := o[ns]
	return t, ok, nil
}

// TestTheExchangeOverGRPCAndREST: the one method the Guard lets through
// without an identity answers from the request's token alone, with the
// same codes over both protocols, and names the field of bad input.
// startExchange serves the exchange through the Guard: tenant web
// (PROVIDER, namespace web-prod, acme-bot's PAT published) and tenant shop
// (BOTH, namespace shop, nothing published yet); tokens web-pod, shop-pod
// and free-pod (of a Pod in an unbound namespace).
func startExchange(tb testing.TB, log *slog.Logger) (*instance, credbrokerv1.PullCredentialServiceClient) {
	tb.Helper()
	acme := broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: acmeOrgID}, Registries: []string{"ghcr.io"}, PullMode: broker.PullProvider}
	pending := broker.Tenant{ID: "shop", Owner: broker.Owner{Login: "shop", ID: 5}, Registries: []string{"ghcr.io"}, PullMode: broker.PullBoth}
	sealer, err := broker.NewSealer(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	pubs := broker.NewPublications(broker.NewMemoryPublications(), sealer)
	if err := pubs.Put(context.Background(), acme, broker.Credential{Kind: broker.KindPAT, Username: "acme-bot", Token: acmeBotPAT}); err != nil {
		tb.Fatal(err)
	}
	exchanger := broker.NewExchanger(namespaceOwners{"web-prod": acme, "shop": pending}, pubs, broker.ExchangerConfig{}, log)
	tokens := podTokens{
		"web-pod":  {Namespace: "web-prod", ServiceAccount: "default", Pod: "app-1"},
		"shop-pod": {Namespace: "shop", ServiceAccount: "default", Pod: "cart-1"},
		"free-pod": {Namespace: "elsewhere", ServiceAccount: "default", Pod: "x"},
	}
	in := start(tb, tb.TempDir(), server.Services{Exchange: api.NewExchangeAPI(tokens, exchanger, log)}, withGuard(nil))
	return in, credbrokerv1.NewPullCredentialServiceClient(in.conn)
}

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
			if strings.Contains(st.Message(), acmeBotPAT) {
				t.Error("an error carries the PAT")
			}
			body := `{"serviceAccountToken":"` + tc.token + `","image":"` + tc.image + `"}`
			code, out := in.do(t, http.MethodPost, "/v1/pullcredentials:exchange", body)
			if code != tc.wantHTTP {
				t.Fatalf("REST: %d %v, want %d", code, out, tc.wantHTTP)
			}
			if code == http.StatusOK {
				auth, _ := out["auth"].(map[string]any)
				entry, _ := auth[tc.wantPrefix].(map[string]any)
				if entry["password"] != tc.wantSecret || out["tenantId"] != "web" {
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
