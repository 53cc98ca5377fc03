package k8ssync

import (
	"context"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/boltstore"
	"github.com/credbroker/credbroker/broker"
)

// Registration looks at the cluster: a selector that matches a namespace
// another tenant lists, or that another selector matches now, is refused,
// and so is a listing of a namespace another selector matches now; a
// tenant's own namespaces and unclaimed ones stay free to take. The
// refusal never names the other tenant.
func TestRegistrationRefusesClaimsOnAnotherTenantsNamespaces(t *testing.T) {
	requireCluster(t)
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := broker.NewTenants(store, nil, nil, clock.RealClock{}, broker.TenantsConfig{Namespaces: ClusterNamespaces{Client: client}})
	ctx := context.Background()
	web, shop, free := unique("claims-web"), unique("claims-shop"), unique("claims-free")
	webLabel, shopLabel := unique("web"), unique("shop")
	createNamespace(t, web, map[string]string{"team": webLabel})
	createNamespace(t, shop, map[string]string{"team": shopLabel, "tier": "prod"})
	createNamespace(t, free, map[string]string{"tier": "prod"})
	create := func(id string, edit func(*broker.Tenant)) error {
		tn := tenant(id, func(t *broker.Tenant) { t.App = &broker.GitHubApp{InstallationID: 1} })
		edit(&tn)
		_, _, err := reg.Create(ctx, tn)
		return err
	}
	if err := create("holder-web", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + webLabel }); err != nil {
		t.Fatal(err)
	}
	if err := create("holder-shop", func(t *broker.Tenant) { t.Namespaces = []string{shop} }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(*broker.Tenant)
		refused bool
	}{
		{"a selector matching another tenant's listed namespace", func(t *broker.Tenant) { t.NamespaceSelector = "tier=prod" }, true},
		{"a selector matching what another selector matches", func(t *broker.Tenant) { t.NamespaceSelector = "team in (" + webLabel + ",nobody)" }, true},
		{"a listing of what another selector matches", func(t *broker.Tenant) { t.Namespaces = []string{web} }, true},
		{"a selector matching only free namespaces", func(t *broker.Tenant) { t.NamespaceSelector = "tier=prod,team!=" + shopLabel }, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := create(unique("claimant")+string(rune('a'+i)), tc.edit)
			switch {
			case tc.refused && broker.ReasonOf(err) != broker.ReasonNamespaceClaimed:
				t.Errorf("create: %v, want NAMESPACE_CLAIMED", err)
			case tc.refused && (strings.Contains(err.Error(), "holder-web") || strings.Contains(err.Error(), "holder-shop")):
				t.Errorf("the refusal names the other tenant: %v", err)
			case !tc.refused && err != nil:
				t.Errorf("create: %v", err)
			}
		})
	}
	// The holder may keep its own namespaces on update.
	if _, err := reg.Update(ctx, "holder-web", "", func(cur broker.Tenant) (broker.Tenant, error) {
		cur.NamespaceSelector = "team in (" + webLabel + ")"
		return cur, nil
	}); err != nil {
		t.Errorf("the holder updating its own selector: %v", err)
	}
}
