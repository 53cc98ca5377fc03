package k8ssync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credbroker/credbroker/admission"
)

// Marking namespaces for the admission policy: a namespace bound to a
// tenant carries the tenant's id and image scopes, any other none. The
// Namespace object is where no namespace user can write (a RoleBinding
// grants nothing on it), and the API server hands it to the policy's CEL.

// mark is a namespace's label and annotation; the zero value is no mark.
type mark struct{ tenant, scopes string }

func markOf(ns *corev1.Namespace) mark {
	return mark{tenant: ns.Labels[admission.LabelTenant], scopes: ns.Annotations[admission.AnnotationImageScopes]}
}

// wantedMark is the mark of namespace when owner holds it: the tenant and
// the scopes its Pods may run images from there (the namespace's own on
// the in-cluster registry among them).
func (s *Syncer) wantedMark(namespace string, owner *binding) mark {
	if owner == nil {
		return mark{}
	}
	return mark{tenant: owner.tenant.ID, scopes: strings.Join(s.cfg.Images.ScopesIn(owner.tenant, namespace), " ")}
}

// ensureMark makes ns carry owner's mark, or none without an owner. The
// reconcile calls it before writing a Secret and after deleting one, so a
// credential is never in a namespace the policy does not guard. A mark of
// a tenant not yet published is kept, as its Secrets are: a new leader
// must not lift the policy while it catches up.
func (s *Syncer) ensureMark(ctx context.Context, ns *corev1.Namespace, owner *binding) error {
	if !s.cfg.MarkNamespaces || ns == nil || !s.cfg.Scope.Allows(ns.Name) {
		return nil
	}
	have, want := markOf(ns), s.wantedMark(ns.Name, owner)
	if have == want || (want == (mark{}) && s.unannounced(have.tenant)) {
		return nil
	}
	value := func(v string) any {
		if v == "" {
			return nil // a merge patch deletes a key set to null
		}
		return v
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{admission.LabelTenant: value(want.tenant)},
		"annotations": map[string]any{admission.AnnotationImageScopes: value(want.scopes)},
	}})
	if err != nil {
		return err
	}
	s.markEchoes.Store(ns.Name, want)
	_, err = s.client.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: Component})
	if err != nil {
		s.markEchoes.Delete(ns.Name)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mark namespace %s for tenant %q: %w", ns.Name, want.tenant, err)
	}
	s.writes.Add(1)
	s.log.DebugContext(ctx, "namespace marked", slog.String("namespace", ns.Name), slog.String("tenant", want.tenant),
		slog.String("previousTenant", have.tenant), slog.String("scopes", want.scopes))
	return nil
}
