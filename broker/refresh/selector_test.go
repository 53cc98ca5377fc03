package refresh

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"

	clocktesting "k8s.io/utils/clock/testing"
)

// A tenant read from the store with a selector outside the prefix is kept
// and synced (never refused, never lost), and carries a condition whose
// event names the fix; it recovers once the selector is fixed.
func TestALegacySelectorRaisesAConditionThatNamesTheFix(t *testing.T) {
	ctx := context.Background()
	s := &simulated{clock: clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)),
		sink: &brokertest.RecordingSink{}, events: brokertest.NewMemEvents(), prober: &brokertest.FakeProber{}}
	s.src = &brokertest.FakeSource{Now: s.clock.Now}
	store := brokertest.NewMemStore()
	s.reg = broker.NewTenants(store, nil, nil, s.clock, broker.TenantsConfig{AppPermissions: map[string]string{"packages": "read", "metadata": "read"}, Scope: brokertest.PrefixScope})
	legacy := brokertest.AppTenantFor("legacy").WithDefaults()
	legacy.NamespaceSelector = "team=web"
	if _, err := store.CreateTenant(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	s.r = s.newRefresher()
	s.step(ctx)

	calls, latest := s.sink.Snapshot()
	if _, ok := latest["legacy"]; !ok {
		t.Fatalf("the legacy tenant was not published: %v", calls)
	}
	var raised *broker.Event
	for _, ev := range s.events.Events {
		if ev.Type == broker.EventSelectorUnprotected && ev.TenantID == "legacy" {
			raised = &ev
		}
	}
	if raised == nil {
		t.Fatalf("no %s event: %v", broker.EventSelectorUnprotected, s.events.Types())
	}
	for _, want := range []string{broker.DefaultSelectorPrefix, "team", "binds no new namespace", "namespaceSelector"} {
		if !strings.Contains(raised.Message, want) {
			t.Errorf("the event does not name %q: %s", want, raised.Message)
		}
	}
	if raised.DedupeKey != selectorCondition("legacy") {
		t.Errorf("the event is about condition %s", raised.DedupeKey)
	}
	s.step(ctx)
	if n := countTypes(s.events.Types(), string(broker.EventSelectorUnprotected)); n != 1 {
		t.Errorf("the condition was raised %d times", n)
	}

	if _, err := s.reg.Update(ctx, "legacy", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.NamespaceSelector = broker.DefaultSelectorPrefix + "team=web"
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	s.r.syncTenantID(ctx, "legacy")
	if !slices.Contains(s.events.Types(), string(broker.EventRecovered)+" legacy") {
		t.Errorf("the fixed selector's condition did not recover: %v", s.events.Types())
	}
}

func countTypes(types []string, eventType string) int {
	n := 0
	for _, ty := range types {
		if strings.HasPrefix(ty, eventType+" ") {
			n++
		}
	}
	return n
}
