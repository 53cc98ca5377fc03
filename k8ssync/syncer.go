package k8ssync

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
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
	// Workers reconciling namespaces in parallel (4 when zero; WorkersFor
	// sizes them to the client's QPS), and a fourth as many again (one at
	// least) for the namespaces of tenants' first publications.
	Workers int
	// Clock dates sync times; the real clock when nil.
	Clock clock.PassiveClock
	// Scope is where Secrets may go, whatever a tenant's list or selector
	// says: never a reserved namespace (kube-* always) and, in namespaced
	// mode, only a granted one. Namespaced mode also watches Secrets and
	// ServiceAccounts per granted namespace instead of cluster-wide.
	Scope broker.NamespaceScope
	// MarkNamespaces labels and annotates every bound namespace with its
	// tenant and image scopes, which the admission policy reads
	// (docs/admission.md); it needs the right to patch namespaces.
	MarkNamespaces bool
	// Images has the platform's public scopes, which the marks carry
	// beside each tenant's own.
	Images broker.ImageRules
	// Robots, if set, are an in-cluster registry's per-namespace
	// credentials, which each pull Secret carries beside its tenant's.
	Robots RobotCredentials
	// Reporter hears each change of a namespace's state or its reason
	// (the broker turns failures and recoveries into notifications; the
	// states themselves the Syncer keeps, see Namespaces). It is called
	// from the reconciling workers and must not call back into the Syncer;
	// nobody hears when nil.
	Reporter broker.SyncReporter
}

// RobotCredentials are an in-cluster registry's per-namespace credentials
// (registrytoken.RobotPasswords implements it), which rotate.
type RobotCredentials interface {
	Robot(namespace string) broker.RegistryAuth
	NextRotation() time.Time
}

// binding is what the Syncer knows of a tenant: where it goes and what to
// write there.
type binding struct {
	tenant   broker.Tenant
	payload  broker.SecretPayload // no credential yet after Bind
	selector labels.Selector      // nil without a namespace selector
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
	secrets     caches[*corev1.Secret]
	accounts    caches[*corev1.ServiceAccount] // of the configured names only
	hasSynced   []cache.InformerSynced
	queue       *lane
	// firstPublications holds the namespaces of tenants that have no
	// Secret out yet (their first publication, their binding): a lane with
	// workers of its own, so that a tenant created during a large
	// rotation is not queued behind it. A namespace may sit in both
	// queues; nsLocks keeps it reconciled by one worker at a time.
	firstPublications *lane
	nsLocks           [64]sync.Mutex
	// echoes holds, by namespace, the mark credbroker is writing or
	// wrote last. The watch event that brings just that mark needs no
	// reconcile, and one would do harm: it can run before the Secret
	// written right after the mark reaches the informer, and create it a
	// second time (refused, then retried: 29 of 200 namespaces in
	// TestAMarkedFirstPublicationCreatesEachSecretOnce before it was
	// skipped). It is set before the patch: the event may come before the
	// patch's response.
	echoes markEchoes

	mu       sync.RWMutex
	bindings map[string]*binding
	removed  map[string]bool // tenants withdrawn with Remove
	complete bool            // every live tenant has been published
	synced   atomic.Bool

	states *syncStates

	writes     atomic.Int64
	reconciles atomic.Int64 // finished reconciles, for tests to wait on
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
		cfg:               cfg,
		client:            client,
		log:               log,
		bindings:          map[string]*binding{},
		removed:           map[string]bool{},
		states:            newSyncStates(cfg.Reporter),
		queue:             newLane("credbroker-namespaces", clock.RealClock{}),
		firstPublications: newLane("credbroker-first-namespaces", clock.RealClock{}),
	}
	s.broadcaster = record.NewBroadcaster()
	s.recorder = s.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})

	if err := s.watch(client); err != nil {
		return nil, err
	}
	return s, nil
}

// Writes counts the writes the Syncer has made: Secrets created, updated
// and deleted, ServiceAccounts patched and namespaces marked.
func (s *Syncer) Writes() int64 { return s.writes.Load() }

// Run watches and reconciles until ctx is done. Call it once.
func (s *Syncer) Run(ctx context.Context) error {
	s.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer s.broadcaster.Shutdown()
	defer s.queue.ShutDown()
	defer s.firstPublications.ShutDown()
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
	secrets := s.secrets.all()
	for _, sec := range secrets {
		s.queue.Add(sec.Namespace)
	}
	s.log.InfoContext(ctx, "syncer started", slog.Int("namespaces", len(nss)), slog.Int("managedSecrets", len(secrets)))

	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for s.processNext(ctx, s.queue) {
			}
		})
	}
	for range max(1, s.cfg.Workers/4) {
		wg.Go(func() {
			for s.processNext(ctx, s.firstPublications) {
			}
		})
	}
	<-ctx.Done()
	s.queue.ShutDown()
	s.firstPublications.ShutDown()
	wg.Wait()
	return nil
}

func (s *Syncer) processNext(ctx context.Context, queue *lane) bool {
	ns, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(ns)
	defer s.reconciles.Add(1)
	if err := s.reconcileSafely(ctx, ns); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "sync failed, will retry", slog.String("namespace", ns), slog.Any("error", err))
		}
		queue.AddRateLimited(ns)
		return true
	}
	queue.Forget(ns)
	return true
}

// reconcileSafely reconciles ns, turning a panic into an error (with its
// stack logged): the namespace is retried with backoff like any failure,
// and the other namespaces go on.
func (s *Syncer) reconcileSafely(ctx context.Context, ns string) (err error) {
	lock := &s.nsLocks[fnv32(ns)%uint32(len(s.nsLocks))]
	lock.Lock()
	defer lock.Unlock()
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "reconcile panicked", slog.String("namespace", ns), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("reconcile panicked: %v", p)
		}
	}()
	return s.reconcile(ctx, ns)
}

// Publish implements broker.Sink.
func (s *Syncer) Publish(_ context.Context, t broker.Tenant, p broker.SecretPayload) error {
	b := &binding{tenant: t, payload: p}
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
	queue := s.queue
	if old == nil || old.payload.Credential.Token == "" {
		queue = s.firstPublications
	}
	s.enqueueTenant(queue, t.ID, old, b)
	return nil
}

// Bind implements broker.Sink: t's namespaces are claimed and marked
// before its first credential, which Publish brings.
func (s *Syncer) Bind(_ context.Context, t broker.Tenant) {
	b := &binding{tenant: t}
	if t.NamespaceSelector != "" {
		sel, err := labels.Parse(t.NamespaceSelector)
		if err != nil {
			return // Publish reports it; registration refuses it
		}
		b.selector = sel
	}
	s.mu.Lock()
	if s.bindings[t.ID] != nil {
		s.mu.Unlock()
		return
	}
	s.bindings[t.ID] = b
	delete(s.removed, t.ID)
	s.mu.Unlock()
	s.enqueueTenant(s.firstPublications, t.ID, b)
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
		for _, sec := range s.secrets.all() {
			s.queue.Add(sec.Namespace)
		}
	}
}

// Remove implements broker.Sink.
func (s *Syncer) Remove(_ context.Context, tenantID string) error {
	s.mu.Lock()
	old := s.bindings[tenantID]
	delete(s.bindings, tenantID)
	s.removed[tenantID] = true
	s.mu.Unlock()
	s.states.drop(tenantID)
	s.enqueueTenant(s.queue, tenantID, old)
	return nil
}

// enqueueTenant queues every namespace a tenant is or was bound to, or holds
// a Secret of. Before the caches have synced Run will queue everything.
func (s *Syncer) enqueueTenant(queue *lane, tenantID string, bindings ...*binding) {
	if !s.synced.Load() {
		return
	}
	for _, b := range bindings {
		if b == nil {
			continue
		}
		for _, ns := range b.tenant.Namespaces {
			queue.Add(ns)
		}
		if b.selector != nil {
			nss, _ := s.namespaces.List(b.selector)
			for _, ns := range nss {
				queue.Add(ns.Name)
			}
		}
	}
	for _, sec := range s.secrets.byIndex(byTenantIndex, tenantID) {
		queue.Add(sec.Namespace)
	}
}

// fnv32 spreads namespaces over the reconcile locks.
func fnv32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// unannouncedLocked reports whether a tenant's Secrets (and mark) must be
// left alone because the tenant has not been published yet: it has no
// binding, was not removed, and not every live tenant is known. Any other
// Secret not owned by its namespace's tenant goes. s.mu is held.
func (s *Syncer) unannouncedLocked(tenantID string) bool {
	_, bound := s.bindings[tenantID]
	return !bound && !s.complete && !s.removed[tenantID]
}

// Report implements broker.Sink: a Warning Event on the tenant's Secret in
// every namespace it is synced to, so that whoever runs workloads there
// sees the problem before their pods fail to pull.
func (s *Syncer) Report(tenantID string, reason broker.Reason, message string) {
	s.mu.RLock()
	b := s.bindings[tenantID]
	s.mu.RUnlock()
	if b == nil {
		return
	}
	if reason != "" { // an expiry warning has none
		message = string(reason) + ": " + message
	}
	for _, st := range s.states.of(tenantID) {
		if st.State == broker.SyncSynced {
			s.recorder.Event(secretOf(st.Namespace, b), corev1.EventTypeWarning, "CredentialProblem", message)
		}
	}
}

// Namespaces implements broker.Sink: the tenant's namespaces as the Syncer
// last found or left them.
func (s *Syncer) Namespaces(tenantID string) []broker.NamespaceSync {
	return s.states.of(tenantID)
}

var _ broker.Sink = (*Syncer)(nil)
