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

// Reconciling one namespace: which tenant it belongs to, the Secret it must
// hold, and what is reported of it.

// claims decides which tenant a namespace belongs to (broker.Claimant's
// rule, the credential provider's too); every other claimant is told.
func (s *Syncer) claims(ns *corev1.Namespace, holder string) (owner *binding, others []*binding, all []*binding) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var explicit, selected []string
	var claimants []*binding
	for _, id := range slices.Sorted(maps.Keys(s.bindings)) {
		b := s.bindings[id]
		all = append(all, b)
		switch {
		case ns == nil || !s.cfg.Scope.Allows(ns.Name) || !b.binds(ns, s.cfg.Scope):
			continue
		case slices.Contains(b.tenant.Namespaces, ns.Name):
			explicit = append(explicit, id)
		default:
			selected = append(selected, id)
		}
		claimants = append(claimants, b)
	}
	winner, _ := broker.Claimant(explicit, selected, holder)
	for _, b := range claimants {
		if b.tenant.ID == winner {
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
		s.markEchoes.Delete(name)
	} else if err != nil {
		return err
	}
	managed := s.secrets.inNamespace(name)
	holder := ""
	if len(managed) > 0 {
		holder = managed[0].Labels[LabelTenant]
	}
	owner, others, all := s.claims(ns, holder)
	var current *corev1.Secret
	for _, sec := range managed {
		tenantID := sec.Labels[LabelTenant]
		if owner != nil && owner.tenant.WantsSecrets() && sec.Name == owner.tenant.SecretName && tenantID == owner.tenant.ID {
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
			msg := "namespace belongs to another tenant"
			if owner == nil {
				msg = "namespace is claimed by more than one tenant's selector, and none held it: it goes to none"
			}
			s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: name, State: broker.SyncConflict, SyncTime: now,
				Reason: broker.ReasonNamespaceClaimed, Message: msg})
		case ns != nil && b.binds(ns, s.cfg.Scope) && !s.cfg.Scope.Reserves(name) && !s.cfg.Scope.Grants(name):
			// Namespaced mode: the tenant's selector reaches a namespace the
			// broker holds no rights in. (Reserved ones are passed over in
			// silence: registration already says no tenant gets them.)
			s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: name, State: broker.SyncFailed, SyncTime: now,
				Reason: broker.ReasonSyncFailed, Message: s.cfg.Scope.Refusal(name)})
		case ns == nil && slices.Contains(b.tenant.Namespaces, name):
			s.setStatus(ctx, b.tenant.ID, broker.NamespaceSync{Namespace: name, State: broker.SyncPending, Message: "namespace does not exist"})
		default:
			s.clearStatus(ctx, b.tenant.ID, name)
		}
	}
	if err := s.ensureMark(ctx, ns, owner); err != nil {
		return err
	}
	if owner == nil || !owner.tenant.WantsSecrets() || owner.cred.Token == "" {
		// A PROVIDER tenant holds the namespace (no other gets it) with no
		// Secret in it: the credential provider hands its Pods the
		// credential. A tenant bound before its first credential holds it
		// too, marked, and keeps whatever Secret of its is there.
		return nil
	}
	if err := s.ensureSecret(ctx, ns, owner, current); err != nil {
		return err
	}
	if s.cfg.Robots != nil {
		// Back when the robot rotates, to write its next credential.
		s.queue.AddAfter(name, time.Until(s.cfg.Robots.NextRotation()))
	}
	if owner.tenant.PatchServiceAccounts {
		return s.patchServiceAccounts(ctx, name, owner.tenant.SecretName)
	}
	return nil
}

func (s *Syncer) ensureSecret(ctx context.Context, ns *corev1.Namespace, b *binding, current *corev1.Secret) error {
	want := s.desiredSecret(ns.Name, b)
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
	s.recorder.Eventf(s.desiredSecret(ns.Name, b), corev1.EventTypeWarning, "SyncFailed", "writing Secret %s for tenant %s failed: %v", b.tenant.SecretName, b.tenant.ID, err)
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
