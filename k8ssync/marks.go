package k8ssync

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

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

// markEchoes holds, by namespace, the mark credbroker is writing or wrote
// last (see Syncer.echoes).
type markEchoes struct {
	mu   sync.Mutex
	byNS map[string]mark
}

// is reports whether m is the mark credbroker wrote on namespace.
func (e *markEchoes) is(namespace string, m mark) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	echo, ok := e.byNS[namespace]
	return ok && echo == m
}

// expect records m as the mark credbroker writes on namespace.
func (e *markEchoes) expect(namespace string, m mark) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byNS == nil {
		e.byNS = map[string]mark{}
	}
	e.byNS[namespace] = m
}

// forget drops the namespace's mark: it is gone, or the patch failed.
func (e *markEchoes) forget(namespace string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.byNS, namespace)
}

// applyMark carries out the mark of a plan: the one planNamespace chose
// (see markFor) is patched on, and a gone namespace's echo forgotten. The
// reconcile applies it before writing a Secret and after deleting one, so
// a credential is never in a namespace the policy does not guard.
func (s *Syncer) applyMark(ctx context.Context, p plan) error {
	if p.gone {
		s.echoes.forget(p.name)
	}
	if p.mark == nil {
		return nil
	}
	namespace, had, want := p.name, p.had, *p.mark
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
	s.echoes.expect(namespace, want)
	_, err = s.client.CoreV1().Namespaces().Patch(ctx, namespace, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: Component})
	if err != nil {
		s.echoes.forget(namespace)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mark namespace %s for tenant %q: %w", namespace, want.tenant, err)
	}
	s.writes.Add(1)
	s.log.DebugContext(ctx, "namespace marked", slog.String("namespace", namespace), slog.String("tenant", want.tenant),
		slog.String("previousTenant", had.tenant), slog.String("scopes", want.scopes))
	return nil
}
