package k8ssync

import (
	"fmt"
	"maps"

	"github.com/credbroker/credbroker/admission"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watch sets up the informers whose changes queue namespaces: Namespaces
// (labels and deletion), the Secrets credbroker manages, and the
// ServiceAccounts it patches.
func (s *Syncer) watch(client kubernetes.Interface) error {
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.enqueueObject(obj) },
		UpdateFunc: func(_, obj any) { s.enqueueObject(obj) },
		DeleteFunc: func(obj any) { s.enqueueObject(obj) },
	}

	nsFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(dropManagedFields))
	nsInformer := nsFactory.Core().V1().Namespaces()
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.enqueueObject(obj) },
		UpdateFunc: func(old, obj any) { s.namespaceUpdated(old.(*corev1.Namespace), obj.(*corev1.Namespace)) },
		DeleteFunc: func(obj any) { s.enqueueObject(obj) },
	}); err != nil {
		return err
	}
	s.namespaces = nsInformer.Lister()
	s.hasSynced = append(s.hasSynced, nsInformer.Informer().HasSynced)
	s.factories = append(s.factories, nsFactory)

	// Secrets and ServiceAccounts are watched over the whole cluster or, in
	// namespaced mode, in each granted namespace (the only place the broker
	// may list them).
	scopes := []string{metav1.NamespaceAll}
	if s.cfg.Scope.Granted != nil {
		scopes = s.cfg.Scope.Granted
	}
	for _, ns := range scopes {
		if err := s.watchNamespace(client, ns, enqueue); err != nil {
			return err
		}
	}
	return nil
}

// namespaceUpdated queues a namespace whose change can matter: its labels
// (selectors), its mark, its deletion; not the echo of credbroker's own
// mark, a change of the mark alone to the one it wrote.
func (s *Syncer) namespaceUpdated(o, n *corev1.Namespace) {
	switch {
	case (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil):
	case maps.Equal(o.Labels, n.Labels) && markOf(o) == markOf(n):
		return // nothing a reconcile reads
	case s.isMarkEcho(o, n):
		return
	}
	s.enqueueObject(n)
}

func (s *Syncer) isMarkEcho(o, n *corev1.Namespace) bool {
	if !s.echoes.is(n.Name, markOf(n)) {
		return false
	}
	others := func(labels map[string]string) map[string]string {
		c := maps.Clone(labels)
		delete(c, admission.LabelTenant)
		return c
	}
	return maps.Equal(others(o.Labels), others(n.Labels))
}

// watchNamespace watches the Secrets credbroker manages and the
// ServiceAccounts it patches in ns (metav1.NamespaceAll for every one).
func (s *Syncer) watchNamespace(client kubernetes.Interface, ns string, enqueue cache.ResourceEventHandler) error {
	// Only Secrets we manage are watched: a cluster's Secrets are many, and
	// the rest are none of our business.
	secretFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns), informers.WithTransform(digestSecretData),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = managedSelector }))
	secretInformer := secretFactory.Core().V1().Secrets().Informer()
	if err := secretInformer.AddIndexers(cache.Indexers{byTenantIndex: func(obj any) ([]string, error) {
		return []string{obj.(*corev1.Secret).Labels[LabelTenant]}, nil
	}}); err != nil {
		return err
	}
	if _, err := secretInformer.AddEventHandler(enqueue); err != nil {
		return err
	}
	s.secrets = append(s.secrets, secretInformer.GetIndexer())
	s.hasSynced = append(s.hasSynced, secretInformer.HasSynced)
	s.factories = append(s.factories, secretFactory)

	// ServiceAccounts are watched by name, so one created after its
	// namespace still gets the Secret.
	for _, name := range s.cfg.ServiceAccounts {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns), informers.WithTransform(dropManagedFields),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			}))
		sa := f.Core().V1().ServiceAccounts().Informer()
		if _, err := sa.AddEventHandler(enqueue); err != nil {
			return err
		}
		s.accounts = append(s.accounts, sa.GetIndexer())
		s.hasSynced = append(s.hasSynced, sa.HasSynced)
		s.factories = append(s.factories, f)
	}
	return nil
}
func (s *Syncer) enqueueObject(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, err := metaOf(obj)
	if err != nil {
		return
	}
	if _, isNamespace := obj.(*corev1.Namespace); isNamespace {
		s.queue.Add(m.GetName())
		return
	}
	s.queue.Add(m.GetNamespace())
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T is not an object", obj)
	}
	return m, nil
}

// dropManagedFields keeps server-side-apply bookkeeping out of the informer
// caches: the Syncer never reads it, and at 10,000 namespaces it was a
// third of the cache's memory (see docs/performance.md).
func dropManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
