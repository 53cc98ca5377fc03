package k8ssync

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/credbroker/credbroker/broker"
)

// TenantCache is an informer over the tenant Secrets of a Store's
// namespace: request-time reads of tenants (the image ownership checks a
// ValidatingAdmissionPolicy or the backend makes per Pod) cost the API
// server nothing. It implements broker.TenantCache.
type TenantCache struct {
	namespace string
	informer  cache.SharedIndexInformer
	factory   informers.SharedInformerFactory
}

// NewTenantCache returns a cache of the tenants stored in namespace; it
// fills when Run starts.
func NewTenantCache(client kubernetes.Interface, namespace string) *TenantCache {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTransform(dropManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = storedTenantSelector }))
	return &TenantCache{namespace: namespace, informer: f.Core().V1().Secrets().Informer(), factory: f}
}

// Run fills the cache and keeps it current until ctx ends.
func (c *TenantCache) Run(ctx context.Context) {
	c.factory.Start(ctx.Done())
	<-ctx.Done()
	c.factory.Shutdown()
}

// CachedTenant implements broker.TenantCache.
func (c *TenantCache) CachedTenant(id string) (broker.Tenant, bool, error) {
	if !c.informer.HasSynced() {
		return broker.Tenant{}, false, nil
	}
	sec, found := caches[*corev1.Secret]{c.informer.GetIndexer()}.get(c.namespace, tenantSecretPrefix+id)
	if !found {
		return broker.Tenant{}, true, broker.ErrNotFound
	}
	t, err := decodeTenant(sec)
	return t, true, err
}

var _ broker.TenantCache = (*TenantCache)(nil)
