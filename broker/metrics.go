package broker

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the broker's Prometheus metrics. A nil *Metrics records
// nothing, so tests need not register any.
type Metrics struct {
	expiry            *prometheus.GaugeVec
	refreshes         *prometheus.CounterVec
	mints             *prometheus.CounterVec
	probes            *prometheus.CounterVec
	events            *prometheus.CounterVec
	deliveries        *prometheus.CounterVec
	revocations       *prometheus.CounterVec
	outboxDepth       prometheus.Gauge
	undeliveredEvents prometheus.Counter
	rateLimit         prometheus.Gauge
	exchanges         *prometheus.CounterVec
	rateOnce          sync.Once
	reg               prometheus.Registerer
}

// NewMetrics registers the broker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		rateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credbroker_github_rate_limit_remaining",
			Help: "GitHub's X-RateLimit-Remaining in its last answer that had one; absent until GitHub reports it.",
		}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credbroker_credential_expiry_timestamp_seconds",
			Help: "When the credential published for a tenant expires (Unix seconds); absent for a PAT that never expires.",
		}, []string{"tenant"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_refreshes_total",
			Help: "Credential refreshes (App token mints and PAT validations) by kind and result (ok, or the failure reason).",
		}, []string{"kind", "result"}),
		mints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_github_mints_total",
			Help: "Installation token requests to GitHub by result.",
		}, []string{"result"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_probes_total",
			Help: "Registry pull probes by result (ok, or the failure reason).",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_events_total",
			Help: "Notifications raised, by type.",
		}, []string{"type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result (ok or error).",
		}, []string{"result"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_token_revocations_total",
			Help: "Superseded or orphaned installation tokens revoked at GitHub, by result (ok, or the failure reason).",
		}, []string{"result"}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credbroker_webhook_outbox_events",
			Help: "Events waiting for webhook delivery (as last seen by the deliverer, up to one page).",
		}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbroker_provider_exchanges_total",
			Help: "Credential provider exchanges by result (ok, error, or the denial).",
		}, []string{"result"}),
		undeliveredEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credbroker_webhook_undelivered_total",
			Help: "Events that left the webhook outbox undelivered: refused for good by the receiver, or failed too often.",
		}),
	}
	for _, c := range []prometheus.Collector{m.expiry, m.refreshes, m.mints, m.probes, m.events, m.deliveries, m.revocations, m.outboxDepth, m.undeliveredEvents, m.exchanges} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// GitHubRateLimit records GitHub's remaining rate limit. The gauge is
// registered at the first report, so that a broker that has not heard from
// GitHub shows no value rather than a misleading 0.
func (m *Metrics) GitHubRateLimit(remaining int) {
	if m == nil {
		return
	}
	m.rateOnce.Do(func() { _ = m.reg.Register(m.rateLimit) })
	m.rateLimit.Set(float64(remaining))
}

func result(reason Reason, err error) string {
	switch {
	case err == nil:
		return "ok"
	case reason != "":
		return string(reason)
	}
	return "error"
}

func (m *Metrics) Refreshed(kind CredentialKind, err error) {
	if m == nil {
		return
	}
	m.refreshes.WithLabelValues(string(kind), result(ReasonOf(err), err)).Inc()
	if kind == KindGitHubApp {
		m.mints.WithLabelValues(result(ReasonOf(err), err)).Inc()
	}
}

func (m *Metrics) Published(tenantID string, expiresAt time.Time) {
	if m == nil {
		return
	}
	if expiresAt.IsZero() {
		m.expiry.DeleteLabelValues(tenantID)
		return
	}
	m.expiry.WithLabelValues(tenantID).Set(float64(expiresAt.Unix()))
}

func (m *Metrics) Forget(tenantID string) {
	if m != nil {
		m.expiry.DeleteLabelValues(tenantID)
	}
}

func (m *Metrics) Probed(err error) {
	if m != nil {
		m.probes.WithLabelValues(result(ReasonOf(err), err)).Inc()
	}
}

func (m *Metrics) Revoked(err error) {
	if m != nil {
		m.revocations.WithLabelValues(result(ReasonOf(err), err)).Inc()
	}
}

func (m *Metrics) Event(t EventType) {
	if m != nil {
		m.events.WithLabelValues(string(t)).Inc()
	}
}

func (m *Metrics) Undelivered() {
	if m != nil {
		m.undeliveredEvents.Inc()
	}
}

func (m *Metrics) Delivered(err error, pending int) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(result("", err)).Inc()
	m.outboxDepth.Set(float64(pending))
}

func (m *Metrics) Exchanged(result string) {
	if m != nil {
		m.exchanges.WithLabelValues(result).Inc()
	}
}
