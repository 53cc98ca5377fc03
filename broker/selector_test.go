package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/brokertest"

	"k8s.io/apimachinery/pkg/labels"
	clocktesting "k8s.io/utils/clock/testing"
)

// A selector may only select on labels under the platform's prefix, which
// a namespace's own users cannot write: registration refuses any other key
// with the field and the prefix named; a stored selector from before the
// prefix may stay as it is through an update of something else, but not be
// changed to another such selector.
func TestASelectorMustBeOnThePlatformsPrefix(t *testing.T) {
	ctx := context.Background()
	store := brokertest.NewMemStore()
	reg := broker.NewTenants(store, nil, nil, clocktesting.NewFakeClock(time.Now()), broker.TenantsConfig{AppPermissions: broker.DefaultAppPermissions(), Scope: brokertest.PrefixScope})
	for i, tc := range []struct {
		selector string
		ok       bool
	}{
		{"tenants.credbroker.io/team=web", true},
		{"tenants.credbroker.io/team in (web,api),!tenants.credbroker.io/legacy", true},
		{"team=web", false},
		{"tenants.credbroker.io/team=web,tier=prod", false},
		{"x.tenants.credbroker.io/team=web", false},
		{"tenants.credbroker.io.evil.com/team=web", false},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			tn := broker.ValidTenant()
			tn.ID = fmt.Sprintf("t%d", i)
			tn.NamespaceSelector = tc.selector
			_, _, err := reg.Create(ctx, tn)
			var invalid *broker.InvalidError
			switch {
			case tc.ok && err != nil:
				t.Errorf("create: %v", err)
			case !tc.ok && (!errors.As(err, &invalid) || invalid.Violations[0].Field != "namespace_selector" ||
				!strings.Contains(invalid.Violations[0].Description, broker.DefaultSelectorPrefix)):
				t.Errorf("create: %v, want namespace_selector refused naming %s", err, broker.DefaultSelectorPrefix)
			}
			if tc.ok {
				_ = store.DeleteTenant(ctx, tn.ID, "")
			}
		})
	}

	legacy := broker.ValidTenant()
	legacy.ID, legacy.NamespaceSelector = "legacy", "team=web"
	if _, err := store.CreateTenant(ctx, legacy); err != nil { // stored before the prefix
		t.Fatal(err)
	}
	if _, err := reg.Update(ctx, "legacy", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.AllowedOwners = []string{"friend"}
		return t, nil
	}); err != nil {
		t.Errorf("updating a legacy tenant's other fields: %v", err)
	}
	var invalid *broker.InvalidError
	if _, err := reg.Update(ctx, "legacy", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.NamespaceSelector = "team=api"
		return t, nil
	}); !errors.As(err, &invalid) {
		t.Errorf("changing a legacy selector to another outside the prefix: %v", err)
	}
	if _, err := reg.Update(ctx, "legacy", "", func(t broker.Tenant) (broker.Tenant, error) {
		t.NamespaceSelector = broker.DefaultSelectorPrefix + "team=web"
		return t, nil
	}); err != nil {
		t.Errorf("fixing a legacy selector: %v", err)
	}
}

// The one rule of binding by selector: a selector on the prefix binds what
// it matches; one outside it binds only what already carries the tenant's
// mark.
func TestSelects(t *testing.T) {
	web, legacy := broker.Tenant{ID: "web"}, broker.Tenant{ID: "legacy"}
	onPrefix := labels.SelectorFromSet(labels.Set{broker.DefaultSelectorPrefix + "team": "web"})
	outside := labels.SelectorFromSet(labels.Set{"team": "web"})
	for _, tc := range []struct {
		name   string
		scope  broker.NamespaceScope
		t      broker.Tenant
		sel    labels.Selector
		labels map[string]string
		want   bool
	}{
		{"on the prefix, matching", brokertest.PrefixScope, web, onPrefix, map[string]string{broker.DefaultSelectorPrefix + "team": "web"}, true},
		{"on the prefix, not matching", brokertest.PrefixScope, web, onPrefix, map[string]string{"team": "web"}, false},
		{"outside, matching, unmarked", brokertest.PrefixScope, legacy, outside, map[string]string{"team": "web"}, false},
		{"outside, matching, marked its own", brokertest.PrefixScope, legacy, outside, map[string]string{"team": "web", broker.NamespaceMark: "legacy"}, true},
		{"outside, matching, marked another's", brokertest.PrefixScope, legacy, outside, map[string]string{"team": "web", broker.NamespaceMark: "web"}, false},
		{"outside, marked its own, no longer matching", brokertest.PrefixScope, legacy, outside, map[string]string{broker.NamespaceMark: "legacy"}, false},
		{"no prefix configured", broker.NamespaceScope{}, legacy, outside, map[string]string{"team": "web"}, true},
		{"no selector", brokertest.PrefixScope, web, nil, map[string]string{broker.NamespaceMark: "web"}, false},
	} {
		if got := tc.scope.Selects(tc.t, tc.sel, tc.labels); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheckSelectorPrefix(t *testing.T) {
	for prefix, ok := range map[string]bool{
		"tenants.credbroker.io/": true,
		"platform.example.com/":  true,
		"tenants.credbroker.io":  false,
		"":                       false,
		"/":                      false,
		"credbroker.io/":         false,
		"kubernetes.io/":         false,
		"node.kubernetes.io/":    false,
		"k8s.io/":                false,
		"Bad_Domain/":            false,
	} {
		if err := broker.CheckSelectorPrefix(prefix); (err == nil) != ok {
			t.Errorf("CheckSelectorPrefix(%q): %v", prefix, err)
		}
	}
}
