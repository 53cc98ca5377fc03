package k8ssync

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/credbroker/credbroker/broker"
)

// TenantInformer is an informer over the tenant Secrets of a Store's
// namespace: request-time reads of tenants (the image ownership checks a
// ValidatingAdmissionPolicy or the backend makes per Pod) cost the API
// server nothing. It implements broker.TenantCache.
type TenantInformer struct {
	namespace string
	informer  cache.SharedIndexInformer
	factory   informers.SharedInformerFactory

	mu      sync.Mutex
	decoded map[string]decodedTenant // by Secret name
}

// Indexes of the tenant cache: a namespace to the tenants listing it, and
// every tenant with a selector under one key.
const (
	byListedNamespace = "byListedNamespace"
	bySelector        = "bySelector"
	hasSelector       = "selector"
)

// NewTenantInformer returns a cache of the tenants stored in namespace; it
// fills when Run starts.
func NewTenantInformer(client kubernetes.Interface, namespace string) *TenantInformer {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTransform(dropManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = storedTenantSelector }))
	c := &TenantInformer{namespace: namespace, informer: f.Core().V1().Secrets().Informer(), factory: f, decoded: map[string]decodedTenant{}}
	// Cannot fail: the informer has not started and the names are new.
	_ = c.informer.AddIndexers(cache.Indexers{
		byListedNamespace: func(obj any) ([]string, error) {
			t, err := decodeTenant(obj.(*corev1.Secret))
			if err != nil {
				return nil, nil // not a tenant: in no index
			}
			return t.Namespaces, nil
		},
		bySelector: func(obj any) ([]string, error) {
			if t, err := decodeTenant(obj.(*corev1.Secret)); err == nil && t.NamespaceSelector != "" {
				return []string{hasSelector}, nil
			}
			return nil, nil
		},
	})
	return c
}

// Synced implements TenantSource.
func (c *TenantInformer) Synced() bool { return c.informer.HasSynced() }

// Listing implements TenantSource.
func (c *TenantInformer) Listing(namespace string) []broker.Tenant {
	return c.indexed(byListedNamespace, namespace)
}

// WithSelector implements TenantSource.
func (c *TenantInformer) WithSelector() []broker.Tenant { return c.indexed(bySelector, hasSelector) }

func (c *TenantInformer) indexed(index, value string) []broker.Tenant {
	objs, _ := c.informer.GetIndexer().ByIndex(index, value)
	out := make([]broker.Tenant, 0, len(objs))
	for _, obj := range objs {
		if t, ok := c.decode(obj.(*corev1.Secret)); ok {
			out = append(out, t)
		}
	}
	return out
}

// decodedTenant is a tenant as decoded from one version of its Secret.
type decodedTenant struct {
	version string
	tenant  broker.Tenant
}

// decode returns the tenant of a cached Secret, decoding it once per
// version: it is asked at every pull.
func (c *TenantInformer) decode(sec *corev1.Secret) (broker.Tenant, bool) {
	c.mu.Lock()
	d, ok := c.decoded[sec.Name]
	c.mu.Unlock()
	if ok && d.version == sec.ResourceVersion {
		return d.tenant, true
	}
	t, err := decodeTenant(sec)
	if err != nil {
		return broker.Tenant{}, false
	}
	c.mu.Lock()
	if len(c.decoded) > 2*len(c.informer.GetIndexer().ListKeys()) { // drop deleted tenants now and then
		clear(c.decoded)
	}
	c.decoded[sec.Name] = decodedTenant{version: sec.ResourceVersion, tenant: t}
	c.mu.Unlock()
	return t, true
}

// Run fills the cache and keeps it current until ctx ends.
func (c *TenantInformer) Run(ctx context.Context) {
	c.factory.Start(ctx.Done())
	<-ctx.Done()
	c.factory.Shutdown()
}

// CachedTenant implements broker.TenantCache.
func (c *TenantInformer) CachedTenant(id string) (broker.Tenant, bool, error) {
	if !c.informer.HasSynced() {
		return broker.Tenant{}, false, nil
	}
	sec, found := caches[*corev1.Secret]{c.informer.GetIndexer()}.get(c.namespace, tenantSecretPrefix+id)
	if !found {
		return broker.Tenant{}, true, broker.ErrNotFound
	}
	t, ok := c.decode(sec)
	if !ok {
		return broker.Tenant{}, true, fmt.Errorf("decode tenant Secret %s/%s: not a tenant", sec.Namespace, sec.Name)
	}
	return t, true, nil
}

var _ broker.TenantCache = (*TenantInformer)(nil)
