package server_test

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

func TestImageValidationOverRESTAndGRPC(t *testing.T) {
	ctx := context.Background()
	in := start(t, t.TempDir(), server.Services{})
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("web")}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		image, reason string
		allowed       bool
	}{
		{"ghcr.io/acme/api:1.2", "IMAGE_REASON_ALLOWED", true},
		{"ghcr.io/evil/api:1.2", "IMAGE_REASON_WRONG_OWNER", false},
		{"ghcr.io.evil.com/acme/api", "IMAGE_REASON_WRONG_REGISTRY", false},
		{"acme/api", "IMAGE_REASON_IMPLICIT_DOCKER_HUB", false},
		{"ghcr.io/acme/../x", "IMAGE_REASON_INVALID_REFERENCE", false},
	}
	for _, tc := range tests {
		code, body := in.do(t, http.MethodPost, "/v1/tenants/web/images:validate", `{"image":"`+tc.image+`"}`)
		if code != http.StatusOK || body["allowed"] != tc.allowed || body["reason"] != tc.reason || body["message"] == "" {
			t.Errorf("REST %s: %d %v, want allowed %v reason %s", tc.image, code, body, tc.allowed, tc.reason)
		}
	}

	code, body := in.do(t, http.MethodPost, "/v1/tenants/web/pods:validate", `{"podSpec":{
		"containers":[{"name":"app","image":"ghcr.io/acme/api:1"}],
		"initContainers":[{"name":"setup","image":"ghcr.io/acme/setup:1"}],
		"ephemeralContainers":[{"name":"debug","image":"ghcr.io/other/debug:1"}]}}`)
	if code != http.StatusOK || body["allowed"] != false {
		t.Fatalf("REST pod: %d %v", code, body)
	}
	containers := body["containers"].([]any)
	last := containers[2].(map[string]any)
	if len(containers) != 3 || last["kind"] != "CONTAINER_KIND_EPHEMERAL" || last["reason"] != "IMAGE_REASON_WRONG_OWNER" {
		t.Errorf("REST pod verdicts %v", containers)
	}

	images := credbrokerv1.NewImageServiceClient(in.conn)
	resp, err := images.ValidatePod(ctx, &credbrokerv1.ValidatePodRequest{TenantId: "web", PodSpec: &credbrokerv1.PodSpec{
		Containers: []*credbrokerv1.Container{{Name: "a", Image: "ghcr.io/acme/a:1"}, {Name: "b", Image: "ghcr.io/acme/b@sha256:" + sixtyFourA}}}})
	if err != nil || !resp.GetAllowed() || len(resp.GetContainers()) != 2 {
		t.Errorf("gRPC pod of the owner's images: %v, %v", resp, err)
	}
}

var sixtyFourA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// BenchmarkValidateImageGRPC measures ValidateImage through the whole gRPC
// stack from parallel clients and reports throughput and p99 latency.
func BenchmarkValidateImageGRPC(b *testing.B) {
	in := start(b, b.TempDir(), server.Services{})
	ctx := context.Background()
	if _, err := in.tenants.CreateTenant(ctx, &credbrokerv1.CreateTenantRequest{Tenant: appTenant("bench")}); err != nil {
		b.Fatal(err)
	}
	images := credbrokerv1.NewImageServiceClient(in.conn)
	req := &credbrokerv1.ValidateImageRequest{TenantId: "bench", Image: "ghcr.io/acme/api:1.2.3"}
	var mu sync.Mutex
	var latencies []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			resp, err := images.ValidateImage(ctx, req)
			mine = append(mine, time.Since(t0))
			if err != nil || !resp.GetAllowed() {
				b.Errorf("ValidateImage: %v %v", resp, err)
				return
			}
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	if n := len(latencies); n > 0 {
		b.ReportMetric(float64(latencies[n*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "req/s")
	}
}
