package k8ssync

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/credbroker/credbroker/internal/testenv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

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

// TestCredentialAndEventStoreContract runs the contract in namespaces that
// get credbroker's own-namespace Role, as the chart grants it where
// credbroker is installed.
func TestCredentialAndEventStoreContract(t *testing.T) {
	requireCluster(t)
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T) *Store {
		ns := unique("store")
		createNamespace(t, ns, nil)
		grantOwnNamespaceRole(t, ns)
		s := NewStore(client, ns)
		s.MaxEvents = 3
		return s
	}
	t.Run("credentials", func(t *testing.T) {
		storetest.RunCredentials(t, func(t *testing.T) broker.CredentialStore { return open(t) })
	})
	t.Run("events", func(t *testing.T) {
		storetest.RunEvents(t, func(t *testing.T) broker.EventStore {
			s := open(t)
			s.MaxEvents = 100
			return s
		})
	})
	t.Run("audit", func(t *testing.T) {
		storetest.RunAudit(t, func(t *testing.T) broker.AuditStore { return open(t) }) // MaxEvents 3
	})
	t.Run("GitHub deliveries", func(t *testing.T) {
		storetest.RunInbox(t, func(t *testing.T) broker.Inbox {
			s := open(t)
			s.MaxDeliveries = 3
			return s
		})
	})
	t.Run("the log is bounded but keeps pending events", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		for i := range 6 {
			ev := broker.Event{ID: fmt.Sprintf("%016x", i+1), Type: broker.EventRecovered, TenantID: "t"}
			if err := s.AppendEvent(ctx, ev, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.EventsAfter(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		ids := ""
		for _, ev := range got {
			ids += ev.ID[15:]
		}
		if ids != "156" {
			t.Errorf("events kept: %q, want the pending 1 and the newest two", ids)
		}
	})
	t.Run("an audited call does not list the trail", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		s.MaxEvents = 100
		var lists atomic.Int64
		cfg := rest.CopyConfig(brokerCfg)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/configmaps") {
					lists.Add(1)
				}
				return rt.RoundTrip(req)
			})
		})
		counted, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.client = counted
		for i := range 50 {
			if err := s.AppendAudit(ctx, broker.AuditRecord{Time: time.Now(), Caller: fmt.Sprintf("c%02d", i), Result: "OK"}); err != nil {
				t.Fatal(err)
			}
		}
		if n := lists.Load(); n != 5 {
			t.Errorf("50 appends listed the trail %d times, want 5 (every tenth of MaxEvents)", n)
		}
		if got, err := s.AuditRecords(ctx, 100); err != nil || len(got) != 50 {
			t.Errorf("trail: %d records (%v), want 50", len(got), err)
		}
	})
	t.Run("a failed trim is not a failed append", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		// The API server refuses the trim's deletes, as it would mid-restart.
		if err := admin.RbacV1().Roles(s.namespace).Delete(ctx, "credbroker", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "credbroker", Namespace: s.namespace},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "patch"}}}}
		if _, err := admin.RbacV1().Roles(s.namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Wait for the new Role, not just the old one's removal: between the
		// two, creates are refused as well.
		testenv.Eventually(t, 10*time.Second, func() (bool, string) {
			err := s.client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, "none", metav1.DeleteOptions{})
			if !apierrors.IsForbidden(err) {
				return false, testenv.Errorf("delete still allowed: %v", err)
			}
			probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: s.namespace}}
			_, err = s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err == nil, testenv.Errorf("create not allowed yet: %v", err)
		})
		for i := range 5 {
			ev := broker.Event{ID: fmt.Sprintf("%016x", i+1), Type: broker.EventRecovered, TenantID: "t"}
			if err := s.AppendEvent(ctx, ev, false); err != nil {
				t.Fatalf("append %d, whose trim fails: %v", i+1, err)
			}
		}
		if got, err := s.EventsAfter(ctx, "", 10); err != nil || len(got) != 5 {
			t.Errorf("log %d events (%v), want each appended once", len(got), err)
		}
	})
}

// grantOwnNamespaceRole copies rbac.yaml's Role and RoleBinding from the
// credbroker namespace into ns and waits until the API server applies them.
func grantOwnNamespaceRole(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	role, err := admin.RbacV1().Roles("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding, err := admin.RbacV1().RoleBindings("credbroker").Get(ctx, "credbroker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: role.Name, Namespace: ns}
	binding.ObjectMeta = metav1.ObjectMeta{Name: binding.Name, Namespace: ns}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		_, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, fmt.Sprintf("the Role is not in force: %v", err)
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

// TestCallersDoNotSpendTheSyncersBudget plays a caller that validates Pods
// as fast as it is allowed while the tenant cache has not synced (held
// unsynced here: it never starts), so that every Lookup reads the store,
// and asks /readyz in the same loop. Those reads go through the Requests
// client; the Syncer's client sends none of them and its limiter keeps its
// whole burst for the writes.
func TestCallersDoNotSpendTheSyncersBudget(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := unique("budget")
	createNamespace(t, ns, nil)
	if _, err := NewStore(admin, ns).CreateTenant(ctx, broker.Tenant{ID: "web", Namespaces: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	// Each client counts what it sends. The Syncer's budget is small, so
	// that a few reads on it would show in its limiter.
	const syncQPS, syncBurst = 1, 5
	counted := func(qps float32, burst int, sent *atomic.Int64) kubernetes.Interface {
		cfg := rest.CopyConfig(brokerCfg)
		cfg.QPS, cfg.Burst = qps, burst
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				sent.Add(1)
				return rt.RoundTrip(req)
			})
		})
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var bySyncer, byRequests atomic.Int64
	cs := Clients{Sync: counted(syncQPS, syncBurst, &bySyncer), Requests: counted(RequestsQPS, RequestsBurst, &byRequests)}
	store := cs.Store(ns)
	reg := broker.NewTenants(store, nil, nil, clock.RealClock{}, broker.TenantsConfig{Cache: NewTenantInformer(cs.Requests, ns)})

	lookups := 0
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); lookups++ {
		if _, err := reg.Lookup(ctx, "web"); err != nil {
			t.Fatalf("lookup %d: %v", lookups+1, err)
		}
		if err := store.Ping(ctx); err != nil {
			t.Fatalf("ping %d: %v", lookups+1, err)
		}
	}
	if n := bySyncer.Load(); n != 0 {
		t.Errorf("%d lookups sent %d requests on the Syncer's client, want none (%d on the Requests client)", lookups, n, byRequests.Load())
	}
	if lookups < 2*syncBurst {
		t.Errorf("the caller looked up %d times in the flood, want more than twice the Syncer's burst of %d", lookups, syncBurst)
	}
	limiter := cs.Sync.CoreV1().RESTClient().GetRateLimiter()
	free := 0
	for range syncBurst {
		if limiter.TryAccept() {
			free++
		}
	}
	if free != syncBurst {
		t.Errorf("after %d lookups the Syncer's limiter lets %d of its burst of %d writes through at once", lookups, free, syncBurst)
	}
}
