package refresh

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsFollowTheRefreshes(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := broker.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := newSimulated(t, brokertest.AppTenantFor("a"))
	s.r.cfg.Metrics = m
	s.step(ctx)
	s.src.Fail(&broker.ReasonError{Cause: broker.ReasonGitHubUnavailable, Msg: "502"})
	tn, _ := s.reg.Get(ctx, "a")
	s.r.RenewNow(ctx, tn)

	_, published := s.sink.Snapshot()
	want := `
# HELP credbroker_credential_expiry_timestamp_seconds When the credential published for a tenant expires (Unix seconds); absent for a PAT that never expires.
# TYPE credbroker_credential_expiry_timestamp_seconds gauge
credbroker_credential_expiry_timestamp_seconds{tenant="a"} ` + formatFloat(published["a"].ExpiresAt) + `
# HELP credbroker_refreshes_total Credential refreshes (App token mints and PAT validations) by kind and result (ok, or the failure reason).
# TYPE credbroker_refreshes_total counter
credbroker_refreshes_total{kind="github_app",result="GITHUB_UNAVAILABLE"} 1
credbroker_refreshes_total{kind="github_app",result="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"credbroker_credential_expiry_timestamp_seconds", "credbroker_refreshes_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "credbroker_github_rate_limit_remaining"); err != nil || n != 0 {
		t.Errorf("rate limit gauge before GitHub reported one: %d series, %v", n, err)
	}
	m.GitHubRateLimit(4999)
	if n, err := testutil.GatherAndCount(reg, "credbroker_github_rate_limit_remaining"); err != nil || n != 1 {
		t.Errorf("rate limit gauge after a report: %d series, %v", n, err)
	}

	// A removed tenant's expiry goes with it.
	s.r.remove(ctx, "a")
	if n, _ := testutil.GatherAndCount(reg, "credbroker_credential_expiry_timestamp_seconds"); n != 0 {
		t.Errorf("%d expiry series after the tenant went", n)
	}
}

func formatFloat(t time.Time) string { return fmt.Sprint(float64(t.Unix())) }
