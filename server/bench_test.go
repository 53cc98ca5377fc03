package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
	"google.golang.org/grpc/metadata"
)

// BenchmarkGetTenant measures one tenant Get through the whole stack —
// loopback TCP, interceptors, registry, bbolt read — over gRPC and over the
// REST gateway (which adds HTTP/1.1, JSON and the gateway's own gRPC hop).
// Run in parallel, as the platform backend would call it.
func BenchmarkGetTenant(b *testing.B) {
	in := start(b, b.TempDir(), server.Services{})
	ctx := context.Background()
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("bench")}); err != nil {
		b.Fatal(err)
	}

	b.Run("grpc", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "bench"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("rest", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		url := in.baseURL + "/v1/tenants/bench"
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	})
}

// BenchmarkExchange is the credential provider's call, warm (the token
// reviewed before, the publication opened), over gRPC through the Guard
// and the audit line, from 32 concurrent callers on the same cores as the
// server. It reports p50 and p99 latency; req/s is 1e9 / ns/op.
func BenchmarkExchange(b *testing.B) {
	ctx := context.Background()
	_, client := startExchange(b, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	req := &credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: "web-pod", Image: "ghcr.io/acme/api"}
	b.ReportAllocs()
	testenv.ParallelLatencies(b, 16, func() error {
		_, err := client.ExchangeServiceAccountToken(ctx, req)
		return err
	})
}

// BenchmarkAPI is the request path the platform backend takes: a bearer
// token through the Guard (authentication, authorization, limits), the
// interceptors, the service, over gRPC and over REST, from 32 concurrent
// callers on the same cores as the server. req/s is 1e9 / ns/op.
func BenchmarkAPI(b *testing.B) {
	in := start(b, b.TempDir(), server.Services{}, withGuard(nil))
	ctx := context.Background()
	if _, _, err := in.registry.Create(ctx, broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: acmeOrgID, Type: broker.OwnerOrganization},
		App: &broker.GitHubApp{InstallationID: acmeInstall}}); err != nil {
		b.Fatal(err)
	}
	token := matrixTokens["admin"].Token
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	images := credbrokerv1.NewImageServiceClient(in.conn)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	rest := func(method, path, body string) func() error {
		return func() error { return testenv.Call(ctx, client, method, in.baseURL+path, token, body) }
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"ValidateImage/grpc", func() error {
			_, err := images.ValidateImage(authed, &credbrokerv1.ValidateImageRequest{TenantId: "web", Image: "ghcr.io/acme/app:v1"})
			return err
		}},
		{"ValidateImage/rest", rest(http.MethodPost, "/v1/tenants/web/images:validate", `{"image":"ghcr.io/acme/app:v1"}`)},
		{"GetTenant/grpc", func() error {
			_, err := in.tenants.GetTenant(authed, &credbrokerv1.GetTenantRequest{Id: "web"})
			return err
		}},
		{"GetTenant/rest", rest(http.MethodGet, "/v1/tenants/web", "")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			testenv.ParallelLatencies(b, 16, tc.call)
		})
	}
}
