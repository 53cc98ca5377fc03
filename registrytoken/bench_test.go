package registrytoken

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/internal/testenv"
)

// BenchmarkTokens asks a served token service for tokens over loopback
// HTTP, as a registry's clients do: crane's GET with a ServiceAccount token
// (its review stubbed: a real one is a TokenReview round trip to the API
// server), containerd's POST with a robot. Tokens/s is 1e9 / ns/op.
func BenchmarkTokens(b *testing.B) {
	f := newFixture(b, owners{})
	robots := f.withRobots(b)
	srv := httptest.NewServer(f.svc.Handler())
	b.Cleanup(srv.Close)
	client := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(client.CloseIdleConnections)
	robot := robots.Robot("web")
	do := func(req *http.Request) error {
		resp, err := client.RoundTrip(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	b.Run("GET/serviceaccount", func(b *testing.B) {
		q := url.Values{"service": {"reg"}, "scope": {"repository:acme/app:pull"}}.Encode()
		testenv.ParallelLatencies(b, 4, func() error {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+TokenPath+"?"+q, nil)
			req.SetBasicAuth("serviceaccount", "web-token")
			return do(req)
		})
	})
	b.Run("POST/robot", func(b *testing.B) {
		form := url.Values{"service": {"reg"}, "scope": {"repository:acme/app:pull"}, "grant_type": {"password"},
			"client_id": {"containerd-client"}, "username": {robot.Username}, "password": {robot.Password}}.Encode()
		testenv.ParallelLatencies(b, 4, func() error {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+TokenPath, strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return do(req)
		})
	})
}
