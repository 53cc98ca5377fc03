package k8ssync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/credbroker/credbroker/broker"
)

// Reconciling one namespace: observe it (the caches, the Syncer's
// bindings), plan what it should hold (plan.go), and apply the plan.

// reconcile makes one namespace hold exactly the Secret of the tenant it
// belongs to, and nothing else of ours.
func (s *Syncer) reconcile(ctx context.Context, name string) error {
	o, err := s.observe(name)
	if err != nil {
		return err
	}
	return s.apply(ctx, planNamespace(o, s.rules()))
}

// rules are the settings of the Syncer's plans.
func (s *Syncer) rules() rules {
	return rules{scope: s.cfg.Scope, images: s.cfg.Images, markNamespaces: s.cfg.MarkNamespaces}
}

// observe reads what a plan of the namespace needs, without a call to the
// API server: the informer caches and the Syncer's bindings.
func (s *Syncer) observe(name string) (observed, error) {
	ns, err := s.namespaces.Get(name)
	if apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp != nil) {
		ns = nil
	} else if err != nil {
		return observed{}, err
	}
	o := observed{name: name, ns: ns, managed: s.secrets.inNamespace(name), now: s.cfg.Clock.Now()}
	if s.cfg.Robots != nil {
		o.robot = []broker.RegistryAuth{s.cfg.Robots.Robot(name)}
	}
	tenants := make([]string, 0, len(o.managed)+1)
	for _, sec := range o.managed {
		tenants = append(tenants, sec.Labels[LabelTenant])
	}
	if ns != nil {
		tenants = append(tenants, markOf(ns).tenant)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range slices.Sorted(maps.Keys(s.bindings)) {
		o.bindings = append(o.bindings, s.bindings[id])
	}
	o.unannounced = make(map[string]bool, len(tenants))
	for _, id := range tenants {
		o.unannounced[id] = s.unannouncedLocked(id)
	}
	return o, nil
}

// apply carries out a plan, in an order that keeps a credential out of a
// namespace the admission policy does not guard: Secrets that go are
// deleted before the mark changes, and the owner's is written after.
func (s *Syncer) apply(ctx context.Context, p plan) error {
	for _, sec := range p.deletes {
		if err := s.deleteSecret(ctx, sec); err != nil {
			return err
		}
	}
	for _, r := range p.reports {
		if r.state == nil {
			s.states.clear(r.tenantID, p.name)
		} else {
			s.states.set(ctx, r.tenantID, *r.state)
		}
	}
	if err := s.applyMark(ctx, p); err != nil {
		return err
	}
	if p.secret == nil {
		return nil
	}
	if err := s.writeSecret(ctx, p); err != nil {
		return err
	}
	if s.cfg.Robots != nil {
		// Back when the robot rotates, to write its next credential.
		s.queue.AddAfter(p.name, time.Until(s.cfg.Robots.NextRotation()))
	}
	if p.owner.tenant.PatchServiceAccounts {
		return s.patchServiceAccounts(ctx, p.name, p.owner.tenant.SecretName)
	}
	return nil
}

// writeSecret brings the owner's Secret to what the plan says it holds,
// and records it in sync.
func (s *Syncer) writeSecret(ctx context.Context, p plan) error {
	b, want, current := p.owner, p.secret, p.current
	synced := broker.NamespaceSync{Namespace: p.name, State: broker.SyncSynced, Fingerprint: want.Annotations[AnnotationFingerprint], SyncTime: p.now}
	if p.write == secretKept {
		if st, ok := s.states.get(b.tenant.ID, p.name); ok && st.State == broker.SyncSynced && st.Fingerprint == synced.Fingerprint {
			return nil
		}
		synced.SyncTime = syncTimeOf(current, p.now)
		s.states.set(ctx, b.tenant.ID, synced)
		return nil
	}
	want.Annotations[AnnotationSyncTime] = p.now.UTC().Format(time.RFC3339)
	secrets := s.client.CoreV1().Secrets(p.name)
	var err error
	switch p.write {
	case secretCreated:
		_, err = secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: Component})
		if apierrors.IsAlreadyExists(err) {
			return s.checkConflict(ctx, p.name, b)
		}
	case secretReplaced:
		if err = s.deleteSecret(ctx, current); err == nil {
			_, err = secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: Component})
		}
	case secretUpdated:
		next := current.DeepCopy()
		next.Data = want.Data
		next.Labels = mergeStrings(next.Labels, want.Labels)
		next.Annotations = mergeStrings(next.Annotations, want.Annotations)
		if want.Annotations[AnnotationExpiry] == "" {
			delete(next.Annotations, AnnotationExpiry)
		}
		_, err = secrets.Update(ctx, next, metav1.UpdateOptions{FieldManager: Component})
	}
	if err != nil {
		if ctx.Err() == nil { // a write cut short by shutdown is not a failure
			s.fail(ctx, p.name, b, err)
		}
		return fmt.Errorf("write Secret %s/%s: %w", p.name, want.Name, err)
	}
	s.writes.Add(1)
	s.states.set(ctx, b.tenant.ID, synced)
	s.log.DebugContext(ctx, "secret written", slog.String("tenant", b.tenant.ID), slog.String("namespace", p.name),
		slog.String("fingerprint", synced.Fingerprint))
	return nil
}

// checkConflict looks at a Secret of the target name that the informer does
// not show: if it is not ours, it is left alone and the binding reports it.
func (s *Syncer) checkConflict(ctx context.Context, ns string, b *binding) error {
	existing, err := s.client.CoreV1().Secrets(ns).Get(ctx, b.tenant.SecretName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Secret %s/%s: %w", ns, b.tenant.SecretName, err)
	}
	if isManaged(existing) {
		return errors.New("informer cache behind a managed Secret; retrying")
	}
	msg := fmt.Sprintf("Secret %s exists and is not managed by credbroker; it is left alone", b.tenant.SecretName)
	if st, ok := s.states.get(b.tenant.ID, ns); !ok || st.State != broker.SyncConflict {
		s.recorder.Event(existing, corev1.EventTypeWarning, "SecretConflict", msg+" (tenant "+b.tenant.ID+")")
		s.log.WarnContext(ctx, "secret conflict", slog.String("tenant", b.tenant.ID), slog.String("namespace", ns))
	}
	s.states.set(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: ns, State: broker.SyncConflict,
		SyncTime: s.cfg.Clock.Now(), Reason: broker.ReasonSecretConflict, Message: msg})
	s.queue.AddAfter(ns, conflictRecheck)
	return nil
}

// fail reports a failed write. The Event is about the Secret (which may not
// exist yet), so that it lands in the tenant's namespace: an Event about a
// Namespace, a cluster-scoped object, would land in "default".
func (s *Syncer) fail(ctx context.Context, ns string, b *binding, err error) {
	s.recorder.Eventf(secretOf(ns, b), corev1.EventTypeWarning, "SyncFailed", "writing Secret %s for tenant %s failed: %v", b.tenant.SecretName, b.tenant.ID, err)
	s.states.set(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: ns, State: broker.SyncFailed, SyncTime: s.cfg.Clock.Now(),
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
	s.states.clear(sec.Labels[LabelTenant], sec.Namespace)
	return nil
}

// patchServiceAccounts adds the Secret to each configured ServiceAccount's
// imagePullSecrets, keeping every other entry. The field has no merge key,
// so a patch would replace the list: it is a read-modify-write, retried on
// conflict.
func (s *Syncer) patchServiceAccounts(ctx context.Context, ns, secretName string) error {
	for _, name := range s.cfg.ServiceAccounts {
		sa, ok := s.accounts.get(ns, name)
		if !ok || hasPullSecret(sa, secretName) {
			continue // a ServiceAccount created later queues the namespace again
		}
		wrote := false
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			fresh, err := s.client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || hasPullSecret(fresh, secretName) {
				return err // or the cache was behind: nothing to write
			}
			fresh.ImagePullSecrets = append(fresh.ImagePullSecrets, corev1.LocalObjectReference{Name: secretName})
			_, err = s.client.CoreV1().ServiceAccounts(ns).Update(ctx, fresh, metav1.UpdateOptions{FieldManager: Component})
			wrote = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("add %s to ServiceAccount %s/%s: %w", secretName, ns, name, err)
		}
		if wrote {
			s.writes.Add(1)
		}
	}
	return nil
}

func hasPullSecret(sa *corev1.ServiceAccount, name string) bool {
	return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
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
