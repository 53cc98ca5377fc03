package k8ssync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/credbroker/credbroker/broker"
)

// What every replica keeps in memory to answer the kubelet credential
// provider without the leader: each tenant's publication (sealed) and
// which tenant holds which namespace.

// Publication Secrets: beside the tenants in credbroker's namespace, with
// no credbroker.io/tenant label, so the Syncer never takes one for a pull
// Secret.
const (
	publicationSecretPrefix = "credbroker-publication-"
	publicationSecretType   = corev1.SecretType("credbroker.io/publication")
	labelPublication        = "credbroker.io/publication"
	annotationFingerprint   = "credbroker.io/fingerprint"
)

var publicationSelector = LabelManagedBy + "=" + ManagedByValue + "," + labelPublication

// PublicationSecrets implements broker.PublicationStore: writes go to the API
// server, reads come from an informer.
type PublicationSecrets struct {
	store    *Store
	informer cache.SharedIndexInformer
	factory  informers.SharedInformerFactory
}

// NewPublicationSecrets returns the publications kept in store's namespace; the
// cache fills when Run starts.
func NewPublicationSecrets(client kubernetes.Interface, store *Store) *PublicationSecrets {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(store.namespace),
		informers.WithTransform(dropManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = publicationSelector }))
	return &PublicationSecrets{store: store, informer: f.Core().V1().Secrets().Informer(), factory: f}
}

// Run fills the cache and keeps it current until ctx ends.
func (p *PublicationSecrets) Run(ctx context.Context) {
	p.factory.Start(ctx.Done())
	<-ctx.Done()
	p.factory.Shutdown()
}

// Synced implements broker.PublicationStore.
func (p *PublicationSecrets) Synced() bool { return p.informer.HasSynced() }

// PutPublication implements broker.PublicationStore.
func (p *PublicationSecrets) PutPublication(ctx context.Context, tenantID, fingerprint string, sealed []byte) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        publicationSecretPrefix + tenantID,
			Namespace:   p.store.namespace,
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, labelPublication: tenantID},
			Annotations: map[string]string{annotationFingerprint: fingerprint},
		},
		Type: publicationSecretType,
		Data: map[string][]byte{sealedKey: sealed},
	}
	_, err := p.store.secrets().Update(ctx, sec, metav1.UpdateOptions{FieldManager: Component})
	if apierrors.IsNotFound(err) {
		_, err = p.store.secrets().Create(ctx, sec, metav1.CreateOptions{FieldManager: Component})
	}
	if err != nil {
		return fmt.Errorf("store the publication of tenant %s: %w", tenantID, storeError(err))
	}
	return nil
}

// DeletePublication implements broker.PublicationStore.
func (p *PublicationSecrets) DeletePublication(ctx context.Context, tenantID string) error {
	err := storeError(p.store.secrets().Delete(ctx, publicationSecretPrefix+tenantID, metav1.DeleteOptions{}))
	if err != nil && !errors.Is(err, broker.ErrNotFound) {
		return fmt.Errorf("delete the publication of tenant %s: %w", tenantID, err)
	}
	return nil
}

// Publication implements broker.PublicationStore.
func (p *PublicationSecrets) Publication(tenantID string) (string, []byte, bool) {
	sec, ok := caches[*corev1.Secret]{p.informer.GetIndexer()}.get(p.store.namespace, publicationSecretPrefix+tenantID)
	if !ok || sec.Labels[labelPublication] != tenantID {
		return "", nil, false
	}
	return sec.Annotations[annotationFingerprint], sec.Data[sealedKey], true
}

// PublishedTenants implements broker.PublicationStore.
func (p *PublicationSecrets) PublishedTenants() []string {
	var ids []string
	for _, sec := range (caches[*corev1.Secret]{p.informer.GetIndexer()}).all() {
		ids = append(ids, sec.Labels[labelPublication])
	}
	slices.Sort(ids)
	return ids
}

var _ broker.PublicationStore = (*PublicationSecrets)(nil)

// TenantSource is where NamespaceInformer finds the tenants that claim a
// namespace, from memory: the TenantInformer (the Kubernetes store, every
// replica), or tenantindex.Index (the embedded store of one replica).
type TenantSource interface {
	// Synced reports whether the source has been filled.
	Synced() bool
	// Listing returns the tenants that list namespace.
	Listing(namespace string) []broker.Tenant
	// WithSelector returns the tenants with a namespace selector.
	WithSelector() []broker.Tenant
}

// NamespaceInformer implements broker.NamespaceOwners on any replica: tenants
// from a TenantSource, namespaces' labels from an informer, the rules from
// broker.NamespaceScope.Selects and broker.Claimant, as the Syncer's. A namespace several selectors match goes to none here:
// which tenant's Secret it holds, the Syncer's tie-break, is not watched.
type NamespaceInformer struct {
	tenants    TenantSource
	scope      broker.NamespaceScope
	namespaces cache.SharedIndexInformer
	factory    informers.SharedInformerFactory

	mu        sync.Mutex
	selectors map[string]labels.Selector // parsed, by selector text
}

// NewNamespaceInformer returns the owners of namespaces as the tenants of
// source claim them within scope; it answers once Run has filled its
// namespace cache and the source is filled.
func NewNamespaceInformer(client kubernetes.Interface, source TenantSource, scope broker.NamespaceScope) *NamespaceInformer {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(dropManagedFields))
	return &NamespaceInformer{tenants: source, scope: scope, namespaces: f.Core().V1().Namespaces().Informer(), factory: f,
		selectors: map[string]labels.Selector{}}
}

// Run fills the namespace cache and keeps it current until ctx ends; the
// source runs on its own.
func (o *NamespaceInformer) Run(ctx context.Context) {
	o.factory.Start(ctx.Done())
	<-ctx.Done()
	o.factory.Shutdown()
}

// errNotSynced is a question asked before the caches are filled.
var errNotSynced = fmt.Errorf("%w: the tenant and namespace caches are not filled yet", broker.ErrUnavailable)

// NamespaceOwner implements broker.NamespaceOwners.
func (o *NamespaceInformer) NamespaceOwner(namespace string) (broker.Tenant, bool, error) {
	if !o.tenants.Synced() || !o.namespaces.HasSynced() {
		return broker.Tenant{}, false, errNotSynced
	}
	if !o.scope.Allows(namespace) {
		return broker.Tenant{}, false, nil
	}
	var listed, selected []string
	byID := map[string]broker.Tenant{}
	for _, t := range o.tenants.Listing(namespace) {
		listed = append(listed, t.ID)
		byID[t.ID] = t
	}
	if len(listed) == 0 {
		nsObj, exists, _ := o.namespaces.GetIndexer().GetByKey(namespace)
		if !exists {
			return broker.Tenant{}, false, nil
		}
		nsLabels := nsObj.(*corev1.Namespace).Labels
		for _, t := range o.tenants.WithSelector() {
			if o.scope.Selects(t, o.selector(t.NamespaceSelector), nsLabels) {
				selected = append(selected, t.ID)
				byID[t.ID] = t
			}
		}
	}
	id, ok := broker.Claimant(listed, selected, "")
	return byID[id], ok, nil
}

// selector parses a selector once; registration refuses a bad one, and one
// stored anyway binds nothing.
func (o *NamespaceInformer) selector(text string) labels.Selector {
	o.mu.Lock()
	defer o.mu.Unlock()
	sel, ok := o.selectors[text]
	if !ok {
		var err error
		if sel, err = labels.Parse(text); err != nil {
			sel = nil
		}
		if len(o.selectors) > 10000 { // selectors of tenants long gone
			clear(o.selectors)
		}
		o.selectors[text] = sel
	}
	return sel
}

var _ broker.NamespaceOwners = (*NamespaceInformer)(nil)

// PodEvents shows a credential provider denial on the Pod it concerns, the
// one place its owner sees it: the kubelet logs the plugin's error, and the
// Pod's Events show only the registry's 401. The recorder's correlator
// folds repeats into one Event with a count.
type PodEvents struct {
	client      kubernetes.Interface
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
}

// NewPodEvents returns PodEvents; Run sends them.
func NewPodEvents(client kubernetes.Interface) *PodEvents {
	b := record.NewBroadcaster()
	return &PodEvents{client: client, broadcaster: b, recorder: b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})}
}

// Run sends the Events until ctx ends.
func (p *PodEvents) Run(ctx context.Context) {
	p.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.client.CoreV1().Events("")})
	<-ctx.Done()
	p.broadcaster.Shutdown()
}

// PullDenied implements broker.DenialReporter.
func (p *PodEvents) PullDenied(pod broker.PodIdentity, image string, d *broker.DeniedError) {
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Pod, UID: types.UID(pod.PodUID)}
	p.recorder.Eventf(ref, corev1.EventTypeWarning, "CredentialDenied", "credbroker handed the node no credential for %s (%s): %s", image, d.Denial, d.Msg)
}

var _ broker.DenialReporter = (*PodEvents)(nil)
