package k8ssync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
)

// Component is the name Events are reported under.
const Component = "credbroker"

// conflictRecheck is how often a namespace whose Secret name is taken by a
// Secret we do not manage is looked at again: that Secret is outside the
// informer's label selector, so its removal produces no event.
const conflictRecheck = time.Minute

const byTenantIndex = "byTenant"

// Config tunes a Syncer; the zero value is usable.
type Config struct {
	// ServiceAccounts whose imagePullSecrets get the Secret, in tenants with
	// PatchServiceAccounts; ["default"] when empty.
	ServiceAccounts []string
	// Workers reconciling namespaces in parallel; 4 when zero.
	Workers int
	// Clock dates sync times; the real clock when nil.
	Clock clock.PassiveClock
	// Reporter hears every namespace's state (the broker keeps it for the
	// credential status and turns failures into notifications). It is
	// called from the reconciling workers and must not call back into the
	// Syncer; nobody hears when nil.
	Reporter broker.SyncReporter
}

// binding is what the Syncer knows of a tenant: where it goes and what to
// write there.
type binding struct {
	tenant   broker.Tenant
	cred     broker.Credential
	config   []byte          // the rendered .dockerconfigjson
	selector labels.Selector // nil without a namespace selector
}

func (b *binding) binds(ns *corev1.Namespace) bool {
	return slices.Contains(b.tenant.Namespaces, ns.Name) ||
		(b.selector != nil && b.selector.Matches(labels.Set(ns.Labels)))
}

// Syncer writes each tenant's pull Secret into the namespaces it is bound to
// and keeps it there. It implements broker.Sink.
type Syncer struct {
	cfg         Config
	client      kubernetes.Interface
	log         *slog.Logger
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	factories   []informers.SharedInformerFactory
	namespaces  corelisters.NamespaceLister
	secrets     corelisters.SecretLister
	secretIndex cache.Indexer
	accounts    map[string]corelisters.ServiceAccountLister
	hasSynced   []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]

	mu       sync.RWMutex
	bindings map[string]*binding
	removed  map[string]bool                            // tenants withdrawn with Remove
	complete bool                                       // every live tenant has been published
	status   map[string]map[string]broker.NamespaceSync // tenant → namespace → state
	synced   atomic.Bool

	writes     atomic.Int64
	reconciles atomic.Int64 // finished reconciles, for tests to wait on
	inflight   atomic.Int32
}

// New returns a Syncer that talks to Kubernetes through client. Nothing
// happens until Run.
func New(client kubernetes.Interface, cfg Config, log *slog.Logger) (*Syncer, error) {
	if len(cfg.ServiceAccounts) == 0 {
		cfg.ServiceAccounts = []string{"default"}
	}
	if cfg.Workers == 0 {
		cfg.Workers = 4
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	s := &Syncer{
		cfg:      cfg,
		client:   client,
		log:      log,
		accounts: map[string]corelisters.ServiceAccountLister{},
		bindings: map[string]*binding{},
		removed:  map[string]bool{},
		status:   map[string]map[string]broker.NamespaceSync{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "credbroker-namespaces"}),
	}
	s.broadcaster = record.NewBroadcaster()
	s.recorder = s.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})

	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.enqueueObject(obj) },
		UpdateFunc: func(_, obj any) { s.enqueueObject(obj) },
		DeleteFunc: func(obj any) { s.enqueueObject(obj) },
	}

	nsFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(dropManagedFields))
	nsInformer := nsFactory.Core().V1().Namespaces()
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.enqueueObject(obj) },
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Namespace), obj.(*corev1.Namespace)
			if !maps.Equal(o.Labels, n.Labels) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) {
				s.enqueueObject(obj)
			}
		},
		DeleteFunc: func(obj any) { s.enqueueObject(obj) },
	}); err != nil {
		return nil, err
	}
	s.namespaces = nsInformer.Lister()
	s.hasSynced = append(s.hasSynced, nsInformer.Informer().HasSynced)

	// Only Secrets we manage are watched: a cluster's Secrets are many, and
	// the rest are none of our business.
	secretFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(digestSecretData),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = managedSelector }))
	secretInformer := secretFactory.Core().V1().Secrets()
	if err := secretInformer.Informer().AddIndexers(cache.Indexers{byTenantIndex: func(obj any) ([]string, error) {
		return []string{obj.(*corev1.Secret).Labels[LabelTenant]}, nil
	}}); err != nil {
		return nil, err
	}
	if _, err := secretInformer.Informer().AddEventHandler(enqueue); err != nil {
		return nil, err
	}
	s.secrets = secretInformer.Lister()
	s.secretIndex = secretInformer.Informer().GetIndexer()
	s.hasSynced = append(s.hasSynced, secretInformer.Informer().HasSynced)
	s.factories = append(s.factories, nsFactory, secretFactory)

	// ServiceAccounts are watched by name, so one created after its
	// namespace still gets the Secret.
	for _, name := range cfg.ServiceAccounts {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(dropManagedFields), informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
		sa := f.Core().V1().ServiceAccounts()
		if _, err := sa.Informer().AddEventHandler(enqueue); err != nil {
			return nil, err
		}
		s.accounts[name] = sa.Lister()
		s.hasSynced = append(s.hasSynced, sa.Informer().HasSynced)
		s.factories = append(s.factories, f)
	}
	return s, nil
}

// Writes counts the Secret and ServiceAccount writes the Syncer has made.
func (s *Syncer) Writes() int64 { return s.writes.Load() }

// Run watches and reconciles until ctx is done. Call it once.
func (s *Syncer) Run(ctx context.Context) error {
	s.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer s.broadcaster.Shutdown()
	defer s.queue.ShutDown()
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range s.factories {
			f.Shutdown()
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), s.hasSynced...) {
		return fmt.Errorf("sync informer caches: %w", ctx.Err())
	}
	s.synced.Store(true)
	// Everything is looked at once: namespaces, and wherever a managed
	// Secret is, which catches Secrets of tenants that are gone.
	nss, _ := s.namespaces.List(labels.Everything())
	for _, ns := range nss {
		s.queue.Add(ns.Name)
	}
	secrets, _ := s.secrets.List(labels.Everything())
	for _, sec := range secrets {
		s.queue.Add(sec.Namespace)
	}
	s.log.InfoContext(ctx, "syncer started", slog.Int("namespaces", len(nss)), slog.Int("managedSecrets", len(secrets)))

	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for s.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	s.queue.ShutDown()
	wg.Wait()
	return nil
}

func (s *Syncer) processNext(ctx context.Context) bool {
	ns, quit := s.queue.Get()
	if quit {
		return false
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	defer s.queue.Done(ns)
	defer s.reconciles.Add(1)
	if err := s.reconcile(ctx, ns); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "sync failed, will retry", slog.String("namespace", ns), slog.Any("error", err))
		}
		s.queue.AddRateLimited(ns)
		return true
	}
	s.queue.Forget(ns)
	return true
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

// Publish implements broker.Sink.
func (s *Syncer) Publish(_ context.Context, t broker.Tenant, cred broker.Credential) error {
	b := &binding{tenant: t, cred: cred, config: broker.DockerConfigJSON(t.Registries, cred)}
	if t.NamespaceSelector != "" {
		sel, err := labels.Parse(t.NamespaceSelector)
		if err != nil {
			return fmt.Errorf("tenant %q: namespace selector: %w", t.ID, err)
		}
		b.selector = sel
	}
	s.mu.Lock()
	old := s.bindings[t.ID]
	s.bindings[t.ID] = b
	delete(s.removed, t.ID)
	s.mu.Unlock()
	s.enqueueTenant(t.ID, old, b)
	return nil
}

// PublishedAll tells the Syncer that every live tenant has been published,
// so that a managed Secret of any other tenant is an orphan and goes.
// Before that call, Secrets of tenants it has not heard of are left alone: a
// replica that has just become leader has not published its tenants yet,
// and must not strip the cluster of working Secrets meanwhile.
func (s *Syncer) PublishedAll() {
	s.mu.Lock()
	s.complete = true
	s.mu.Unlock()
	if s.synced.Load() {
		secrets, _ := s.secrets.List(labels.Everything())
		for _, sec := range secrets {
			s.queue.Add(sec.Namespace)
		}
	}
}

// Remove implements broker.Sink.
func (s *Syncer) Remove(_ context.Context, tenantID string) error {
	s.mu.Lock()
	old := s.bindings[tenantID]
	delete(s.bindings, tenantID)
	delete(s.status, tenantID)
	s.removed[tenantID] = true
	s.mu.Unlock()
	s.enqueueTenant(tenantID, old)
	return nil
}

// enqueueTenant queues every namespace a tenant is or was bound to, or holds
// a Secret of. Before the caches have synced Run will queue everything.
func (s *Syncer) enqueueTenant(tenantID string, bindings ...*binding) {
	if !s.synced.Load() {
		return
	}
	for _, b := range bindings {
		if b == nil {
			continue
		}
		for _, ns := range b.tenant.Namespaces {
			s.queue.Add(ns)
		}
		if b.selector != nil {
			nss, _ := s.namespaces.List(b.selector)
			for _, ns := range nss {
				s.queue.Add(ns.Name)
			}
		}
	}
	secrets, _ := s.secretIndex.ByIndex(byTenantIndex, tenantID)
	for _, obj := range secrets {
		s.queue.Add(obj.(*corev1.Secret).Namespace)
	}
}

// unannounced reports whether a tenant's Secrets must be left alone because
// the tenant has not been published yet: it has no binding, was not
// removed, and not every live tenant is known. Any other Secret not owned
// by its namespace's tenant goes.
func (s *Syncer) unannounced(tenantID string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, bound := s.bindings[tenantID]
	return !bound && !s.complete && !s.removed[tenantID]
}

// Report implements broker.Sink: a Warning Event on the tenant's Secret in
// every namespace it is synced to, so that whoever runs workloads there
// sees the problem before their pods fail to pull.
func (s *Syncer) Report(tenantID string, reason broker.Reason, message string) {
	s.mu.RLock()
	b := s.bindings[tenantID]
	var namespaces []string
	for ns, st := range s.status[tenantID] {
		if st.State == broker.SyncSynced {
			namespaces = append(namespaces, ns)
		}
	}
	s.mu.RUnlock()
	if b == nil {
		return
	}
	for _, ns := range namespaces {
		s.recorder.Event(desiredSecret(ns, b), corev1.EventTypeWarning, "CredentialProblem", string(reason)+": "+message)
	}
}

// claims decides which tenant a namespace belongs to. Registration refuses
// a namespace listed by two tenants, but selectors can still overlap: the
// tenant first by id keeps the namespace and the others are told.
func (s *Syncer) claims(ns *corev1.Namespace) (owner *binding, others []*binding, all []*binding) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range slices.Sorted(maps.Keys(s.bindings)) {
		b := s.bindings[id]
		all = append(all, b)
		if ns == nil || !b.binds(ns) {
			continue
		}
		if owner == nil {
			owner = b
		} else {
			others = append(others, b)
		}
	}
	return owner, others, all
}

// reconcile makes one namespace hold exactly the Secret of the tenant it
// belongs to, and nothing else of ours.
func (s *Syncer) reconcile(ctx context.Context, name string) error {
	ns, err := s.namespaces.Get(name)
	if apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp != nil) {
		ns = nil
	} else if err != nil {
		return err
	}
	owner, others, all := s.claims(ns)

	managed, err := s.secrets.Secrets(name).List(labels.Everything())
	if err != nil {
		return err
	}
	var current *corev1.Secret
	for _, sec := range managed {
		tenantID := sec.Labels[LabelTenant]
		if owner != nil && sec.Name == owner.tenant.SecretName && tenantID == owner.tenant.ID {
			current = sec
			continue
		}
		if s.unannounced(tenantID) {
			continue
		}
		if err := s.deleteSecret(ctx, sec); err != nil {
			return err
		}
	}

	now := s.cfg.Clock.Now()
	for _, b := range all {
		switch {
		case b == owner:
		case slices.Contains(others, b):
			s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: name, State: broker.SyncConflict, SyncTime: now,
				Reason: broker.ReasonNamespaceClaimed, Message: "namespace belongs to tenant " + owner.tenant.ID})
		case ns == nil && slices.Contains(b.tenant.Namespaces, name):
			s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: name, State: broker.SyncPending, Message: "namespace does not exist"})
		default:
			s.clearStatus(ctx, b.tenant.ID, name)
		}
	}
	if owner == nil {
		return nil
	}
	if err := s.ensureSecret(ctx, ns, owner, current); err != nil {
		return err
	}
	if owner.tenant.PatchServiceAccounts {
		return s.patchServiceAccounts(ctx, name, owner.tenant.SecretName)
	}
	return nil
}

func (s *Syncer) ensureSecret(ctx context.Context, ns *corev1.Namespace, b *binding, current *corev1.Secret) error {
	want := desiredSecret(ns.Name, b)
	now := s.cfg.Clock.Now()
	synced := broker.NamespaceSync{Namespace: ns.Name, State: broker.SyncSynced, Fingerprint: b.cred.Fingerprint(), SyncTime: now}
	if current != nil && upToDate(current, want) {
		if st, ok := s.statusOf(b.tenant.ID, ns.Name); ok && st.State == broker.SyncSynced && st.Fingerprint == synced.Fingerprint {
			return nil
		}
		synced.SyncTime = syncTimeOf(current, now)
		s.setStatus(ctx, b.tenant.ID, synced)
		return nil
	}
	want.Annotations[AnnotationSyncTime] = now.UTC().Format(time.RFC3339)
	var err error
	switch {
	case current == nil:
		_, err = s.client.CoreV1().Secrets(ns.Name).Create(ctx, want, metav1.CreateOptions{FieldManager: Component})
		if apierrors.IsAlreadyExists(err) {
			return s.checkConflict(ctx, ns, b)
		}
	case current.Type != want.Type:
		// The type of a Secret cannot change: replace it.
		if err = s.deleteSecret(ctx, current); err == nil {
			_, err = s.client.CoreV1().Secrets(ns.Name).Create(ctx, want, metav1.CreateOptions{FieldManager: Component})
		}
	default:
		next := current.DeepCopy()
		next.Data = want.Data
		next.Labels = mergeStrings(next.Labels, want.Labels)
		next.Annotations = mergeStrings(next.Annotations, want.Annotations)
		if want.Annotations[AnnotationExpiry] == "" {
			delete(next.Annotations, AnnotationExpiry)
		}
		_, err = s.client.CoreV1().Secrets(ns.Name).Update(ctx, next, metav1.UpdateOptions{FieldManager: Component})
	}
	if err != nil {
		if ctx.Err() == nil { // a write cut short by shutdown is not a failure
			s.fail(ctx, ns, b, err)
		}
		return fmt.Errorf("write Secret %s/%s: %w", ns.Name, want.Name, err)
	}
	s.writes.Add(1)
	s.setStatus(ctx, b.tenant.ID, synced)
	s.log.DebugContext(ctx, "secret written", slog.String("tenant", b.tenant.ID), slog.String("namespace", ns.Name),
		slog.String("fingerprint", synced.Fingerprint))
	return nil
}

// checkConflict looks at a Secret of the target name that the informer does
// not show: if it is not ours, it is left alone and the binding reports it.
func (s *Syncer) checkConflict(ctx context.Context, ns *corev1.Namespace, b *binding) error {
	existing, err := s.client.CoreV1().Secrets(ns.Name).Get(ctx, b.tenant.SecretName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Secret %s/%s: %w", ns.Name, b.tenant.SecretName, err)
	}
	if isManaged(existing) {
		return errors.New("informer cache behind a managed Secret; retrying")
	}
	msg := fmt.Sprintf("Secret %s exists and is not managed by credbroker; it is left alone", b.tenant.SecretName)
	if st, ok := s.statusOf(b.tenant.ID, ns.Name); !ok || st.State != broker.SyncConflict {
		s.recorder.Event(existing, corev1.EventTypeWarning, "SecretConflict", msg+" (tenant "+b.tenant.ID+")")
		s.log.WarnContext(ctx, "secret conflict", slog.String("tenant", b.tenant.ID), slog.String("namespace", ns.Name))
	}
	s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: ns.Name, State: broker.SyncConflict,
		SyncTime: s.cfg.Clock.Now(), Reason: broker.ReasonSecretConflict, Message: msg})
	s.queue.AddAfter(ns.Name, conflictRecheck)
	return nil
}

// fail reports a failed write. The Event is about the Secret (which may not
// exist yet), so that it lands in the tenant's namespace: an Event about a
// Namespace, a cluster-scoped object, would land in "default".
func (s *Syncer) fail(ctx context.Context, ns *corev1.Namespace, b *binding, err error) {
	s.recorder.Eventf(desiredSecret(ns.Name, b), corev1.EventTypeWarning, "SyncFailed", "writing Secret %s for tenant %s failed: %v", b.tenant.SecretName, b.tenant.ID, err)
	s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: ns.Name, State: broker.SyncFailed, SyncTime: s.cfg.Clock.Now(),
		Reason: broker.ReasonSyncFailed, Message: err.Error()})
}

// deleteSecret deletes a managed Secret, on condition that it is still the
// object the cache showed: a Secret replaced meanwhile is not ours to delete.
func (s *Syncer) deleteSecret(ctx context.Context, sec *corev1.Secret) error {
	if !isManaged(sec) {
		return fmt.Errorf("refusing to delete unmanaged Secret %s/%s", sec.Namespace, sec.Name)
	}
	err := s.client.CoreV1().Secrets(sec.Namespace).Delete(ctx, sec.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete Secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	s.writes.Add(1)
	s.clearStatus(ctx, sec.Labels[LabelTenant], sec.Namespace)
	return nil
}

// patchServiceAccounts adds the Secret to each configured ServiceAccount's
// imagePullSecrets, keeping every other entry. The field has no merge key,
// so a patch would replace the list: it is a read-modify-write, retried on
// conflict.
func (s *Syncer) patchServiceAccounts(ctx context.Context, ns, secretName string) error {
	for name, lister := range s.accounts {
		sa, err := lister.ServiceAccounts(ns).Get(name)
		if apierrors.IsNotFound(err) {
			continue // its creation will queue the namespace again
		}
		if err != nil {
			return err
		}
		if hasPullSecret(sa, secretName) {
			continue
		}
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			fresh, err := s.client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || hasPullSecret(fresh, secretName) {
				return err
			}
			fresh.ImagePullSecrets = append(fresh.ImagePullSecrets, corev1.LocalObjectReference{Name: secretName})
			_, err = s.client.CoreV1().ServiceAccounts(ns).Update(ctx, fresh, metav1.UpdateOptions{FieldManager: Component})
			return err
		})
		if err != nil {
			return fmt.Errorf("add %s to ServiceAccount %s/%s: %w", secretName, ns, name, err)
		}
		s.writes.Add(1)
	}
	return nil
}

func hasPullSecret(sa *corev1.ServiceAccount, name string) bool {
	return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
}

func (s *Syncer) statusOf(tenantID, ns string) (broker.NamespaceSync, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.status[tenantID][ns]
	return st, ok
}

// setStatus records what the Syncer did in a namespace, for its own next
// decisions, and reports it.
func (s *Syncer) setStatus(ctx context.Context, tenantID string, st broker.NamespaceSync) {
	s.mu.Lock()
	if s.status[tenantID] == nil {
		s.status[tenantID] = map[string]broker.NamespaceSync{}
	}
	s.status[tenantID][st.Namespace] = st
	s.mu.Unlock()
	if s.cfg.Reporter != nil {
		s.cfg.Reporter.NamespaceSynced(ctx, tenantID, st)
	}
}

func (s *Syncer) clearStatus(ctx context.Context, tenantID, ns string) {
	s.mu.Lock()
	_, had := s.status[tenantID][ns]
	delete(s.status[tenantID], ns)
	if len(s.status[tenantID]) == 0 {
		delete(s.status, tenantID)
	}
	s.mu.Unlock()
	if had && s.cfg.Reporter != nil {
		s.cfg.Reporter.NamespaceReleased(ctx, tenantID, ns)
	}
}

func mergeStrings(into, from map[string]string) map[string]string {
	if into == nil {
		into = map[string]string{}
	}
	maps.Copy(into, from)
	return into
}

func syncTimeOf(sec *corev1.Secret, fallback time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339, sec.Annotations[AnnotationSyncTime]); err == nil {
		return t
	}
	return fallback
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

var _ broker.Sink = (*Syncer)(nil)
