package k8ssync

import (
	"net/url"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
)

// The API server goes away mid-rotation and comes back on the same address
// (a proxy in front of it drops every connection and refuses new ones, as
// a restart does to a client): the rotation published while it was gone
// reaches every namespace once it is back, each written once more, and the
// state reported is SYNCED, not a failure left behind.
func TestAnAPIServerRestartMidRotationLosesNothing(t *testing.T) {
	requireCluster(t)
	apiserver, err := url.Parse(brokerCfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, apiserver.Host)
	cfg := rest.CopyConfig(brokerCfg)
	cfg.Host = "https://" + proxy.Addr

	label := unique("restart")
	namespaces := []string{label + "-a", label + "-b"}
	for _, ns := range namespaces {
		createNamespace(t, ns, map[string]string{"team": label})
	}
	s := startSyncerAs(t, cfg, Config{})
	first := credential("ghp_restart000000000000000000000000000")
	tn := tenant("restart", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label })
	publish(t, s, tn, first)
	for _, ns := range namespaces {
		testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, first) })
	}
	idle(t, s)
	writes := s.Writes()

	proxy.Down()
	second := credential("ghp_restart111111111111111111111111111")
	publish(t, s, tn, second) // the rotation, while the API server is gone
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, st := range s.Status("restart") {
			if st.State == broker.SyncFailed {
				return true, ""
			}
		}
		return false, "no write failed while the API server was gone"
	})
	proxy.Up(t)
	for _, ns := range namespaces {
		testenv.Eventually(t, 60*time.Second, func() (bool, string) { return holds(t, ns, second) })
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, st := range s.Status("restart") {
			if st.State != broker.SyncSynced || st.Fingerprint != second.Fingerprint() {
				return false, testenv.Errorf("%s: %s %s", st.Namespace, st.State, st.Message)
			}
		}
		return len(s.Status("restart")) == 2, "not every namespace reported"
	})
	idle(t, s)
	if got := s.Writes() - writes; got != int64(len(namespaces)) {
		t.Errorf("%d writes for the rotation across the restart, want one per namespace (%d)", got, len(namespaces))
	}
}
