package k8ssync

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/storetest"
)

// The Kubernetes store, against the real API server, as the credbroker
// ServiceAccount. Each subtest gets a namespace of its own, standing in for
// the broker's namespace.
func TestStoreContract(t *testing.T) {
	requireCluster(t)
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) broker.Store {
		ns := unique("store")
		createNamespace(t, ns, nil)
		return NewStore(client, ns)
	})
}

func TestStoreSecretsAreNotPullSecrets(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := unique("store-sync")
	createNamespace(t, ns, nil)
	store := NewStore(client, ns)
	if _, err := store.CreateTenant(ctx, broker.Tenant{ID: "kept", Owner: broker.Owner{Login: "a", ID: 1, Type: broker.OwnerUser}}); err != nil {
		t.Fatal(err)
	}
	// A Syncer reconciling the store's namespace must leave tenant Secrets be.
	s := startSyncer(t, Config{})
	before := s.reconciles.Load()
	s.queue.Add(ns)
	settle(t, s, before, 1)
	list, err := admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Type != corev1.SecretType("credbroker.io/tenant") {
		t.Errorf("store namespace holds %+v", list.Items)
	}
}
