package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

// blockingTenants holds GetTenant until released, to have a call in flight
// while the server shuts down.
type blockingTenants struct {
	credbrokerv1.UnimplementedTenantServiceServer
	entered chan struct{}
	release chan struct{}
}

func newBlockingTenants() *blockingTenants {
	return &blockingTenants{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (b *blockingTenants) GetTenant(ctx context.Context, req *credbrokerv1.GetTenantRequest) (*credbrokerv1.Tenant, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return &credbrokerv1.Tenant{Id: req.GetId()}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func TestShutdownLetsInFlightCallsFinish(t *testing.T) {
	blocking := newBlockingTenants()
	in := start(t, t.TempDir(), server.Services{Tenants: blocking})
	result := make(chan error, 1)
	go func() {
		_, err := in.tenants.GetTenant(context.Background(), &credbrokerv1.GetTenantRequest{Id: "slow"})
		result <- err
	}()
	<-blocking.entered

	in.cancel() // SIGTERM, as far as the server is concerned
	select {
	case err := <-in.done:
		t.Fatalf("Run returned (%v) while a call was still in flight", err)
	default:
	}
	close(blocking.release)
	if err := <-result; err != nil {
		t.Errorf("in-flight call failed during graceful shutdown: %v", err)
	}
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		in.done <- nil // for the cleanup's stop
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the last call finished")
	}
	if _, err := http.Get(in.baseURL + "/healthz"); err == nil {
		t.Error("HTTP listener still accepts connections after shutdown")
	}
	if !strings.Contains(in.logs.String(), `"msg":"shutdown complete"`) {
		t.Error("no shutdown log line")
	}
}

func TestShutdownCancelsCallsThatOutliveTheDeadline(t *testing.T) {
	blocking := newBlockingTenants() // never released
	in := start(t, t.TempDir(), server.Services{Tenants: blocking})
	result := make(chan error, 1)
	go func() {
		_, err := in.tenants.GetTenant(context.Background(), &credbrokerv1.GetTenantRequest{Id: "stuck"})
		result <- err
	}()
	<-blocking.entered
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		in.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown was not forced after the 2s deadline")
	}
	if err := <-result; status.Code(err) == codes.OK {
		t.Error("a call that outlived the shutdown deadline succeeded")
	}
	if !strings.Contains(in.logs.String(), `"forced":true`) {
		t.Error("a forced shutdown was not logged as forced")
	}
}

func TestHealthReflectionMetricsAndOpenAPI(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})

	health := healthpb.NewHealthClient(in.conn)
	for _, svc := range []string{"", "credbroker.v1.TenantService", "credbroker.v1.EventService"} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(in.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"credbroker.v1.TenantService", "credbroker.v1.CredentialService",
		"credbroker.v1.ImageService", "credbroker.v1.EventService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}

	_, _ = in.tenants.GetTenant(ctx, &credbrokerv1.GetTenantRequest{Id: "nobody"})
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": `grpc_server_handled_total{grpc_code="NotFound",grpc_method="GetTenant",grpc_service="credbroker.v1.TenantService",grpc_type="unary"} 1`,
	} {
		body := get(t, in.baseURL+path, http.StatusOK)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s does not contain %q", path, want)
		}
	}

	var spec struct {
		Swagger string                    `json:"swagger"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(get(t, in.baseURL+"/openapi.json", http.StatusOK)), &spec); err != nil {
		t.Fatal(err)
	}
	for path, method := range map[string]string{
		"/v1/tenants":                                        "post",
		"/v1/tenants/{id}":                                   "delete",
		"/v1/tenants/{tenant.id}":                            "patch",
		"/v1/tenants/{tenantId}/credential:refresh":          "post",
		"/v1/tenants/{tenantId}/images:validate":             "post",
		"/v1/events:watch":                                   "get",
		"/v1/tenants/{tenantId}/credential:dockerconfigjson": "get",
	} {
		if _, ok := spec.Paths[path][method]; !ok {
			t.Errorf("openapi.json (swagger %q) has no %s %s", spec.Swagger, method, path)
		}
	}
}

// /readyz follows the ready function, and says ready or not to anyone who
// asks (it needs no identity) without the internals: those go to the log.
func TestReadyzFollowsTheReadyFunc(t *testing.T) {
	var broken atomic.Bool
	logs := &syncBuffer{}
	ready := func(context.Context) error {
		if broken.Load() {
			return errors.New("store closed")
		}
		return nil
	}
	srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownTimeout: time.Second},
		server.Services{}, ready, prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	url := "http://" + srv.HTTPAddr().String() + "/readyz"
	get(t, url, http.StatusOK)
	broken.Store(true)
	if body := get(t, url, http.StatusServiceUnavailable); strings.Contains(body, "store closed") || !strings.Contains(body, "not ready") {
		t.Errorf("readyz body %q: want \"not ready\" and no internals", body)
	}
	if !strings.Contains(logs.String(), "store closed") {
		t.Errorf("the log does not say why the replica is not ready:\n%s", logs.String())
	}
}

func get(t *testing.T, url string, wantCode int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, body, wantCode)
	}
	return string(body)
}
