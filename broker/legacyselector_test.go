package broker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// A tenant read from the store with a selector outside the prefix is kept
// and synced (never refused, never lost), and carries a condition whose
// event names the fix; it recovers once the selector is fixed.
func TestALegacySelectorRaisesAConditionThatNamesTheFix(t *testing.T) {
	ctx := context.Background()
	s := &simulated{clock: clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)),
		sink: &recordingSink{}, events: newMemEvents(), prober: &fakeProber{}}
	s.src = &fakeSource{now: s.clock.Now}
	store := newMemStore()
	s.reg = NewTenants(store, nil, nil, s.clock, TenantsConfig{AppPermissions: map[string]string{"packages": "read", "metadata": "read"}, Scope: prefixScope})
	legacy := appTenantFor("legacy").withDefaults()
	legacy.NamespaceSelector = "team=web"
	if _, err := store.CreateTenant(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	s.r = s.newRefresher()
	s.step(ctx)

	calls, latest := s.sink.snapshot()
	if _, ok := latest["legacy"]; !ok {
		t.Fatalf("the legacy tenant was not published: %v", calls)
	}
	var raised *Event
	for _, ev := range s.events.events {
		if ev.Type == EventSelectorUnprotected && ev.TenantID == "legacy" {
			raised = &ev
		}
	}
	if raised == nil {
		t.Fatalf("no %s event: %v", EventSelectorUnprotected, s.events.types())
	}
	for _, want := range []string{DefaultSelectorPrefix, "team", "binds no new namespace", "namespaceSelector"} {
		if !strings.Contains(raised.Message, want) {
			t.Errorf("the event does not name %q: %s", want, raised.Message)
		}
	}
	if raised.DedupeKey != selectorCondition("legacy") {
		t.Errorf("the event is about condition %s", raised.DedupeKey)
	}
	s.step(ctx)
	if n := countTypes(s.events.types(), string(EventSelectorUnprotected)); n != 1 {
		t.Errorf("the condition was raised %d times", n)
	}

	if _, err := s.reg.Update(ctx, "legacy", "", func(t Tenant) (Tenant, error) {
		t.NamespaceSelector = DefaultSelectorPrefix + "team=web"
		return t, nil
	}); err != nil {
		t.Fatal(err)
	}
	s.r.syncTenantID(ctx, "legacy")
	if !slices.Contains(s.events.types(), string(EventRecovered)+" legacy") {
		t.Errorf("the fixed selector's condition did not recover: %v", s.events.types())
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
