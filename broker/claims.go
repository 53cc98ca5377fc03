package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// checkClaims refuses namespaces t would newly claim (those before did not)
// that another tenant claims: listed, or matched now by its selector, and
// t's selector matching now what another lists or selects. One namespace
// belongs to at most one tenant. Two registrations racing, or a namespace
// labelled later, can still overlap; the Sink then keeps the namespace with
// the tenant that holds it and reports a conflict to the other.
func (r *Tenants) checkClaims(ctx context.Context, t Tenant, before *Tenant) error {
	cluster := map[string]map[string]string{}
	if r.cfg.Namespaces != nil && (t.NamespaceSelector != "" || len(t.Namespaces) > 0) {
		var err error
		if cluster, err = r.cfg.Namespaces.ListNamespaces(ctx); err != nil {
			return fmt.Errorf("list namespaces for the claim check: %w", err)
		}
	}
	claimed := r.claimedBy(t, cluster)
	if before != nil {
		for ns := range r.claimedBy(*before, cluster) {
			delete(claimed, ns)
		}
	}
	if len(claimed) == 0 {
		return nil
	}
	return r.Each(ctx, func(other Tenant) error {
		if other.ID == t.ID {
			return nil
		}
		theirs := r.claimedBy(other, cluster)
		for _, ns := range slices.Sorted(maps.Keys(claimed)) {
			if theirs[ns] {
				// Never name the other tenant: a tenant-admin must not learn who else is on the platform.
				return &ReasonError{Cause: ReasonNamespaceClaimed, Msg: fmt.Sprintf("namespace %s belongs to another tenant", ns)}
			}
		}
		return nil
	})
}

// claimedBy is the set of namespaces t lists, and of the cluster's
// namespaces its selector binds now (within the scope).
func (r *Tenants) claimedBy(t Tenant, cluster map[string]map[string]string) map[string]bool {
	claimed := map[string]bool{}
	for _, ns := range t.Namespaces {
		claimed[ns] = true
	}
	if t.NamespaceSelector == "" {
		return claimed
	}
	sel, err := labels.Parse(t.NamespaceSelector)
	if err != nil {
		return claimed
	}
	for ns, nsLabels := range cluster {
		if r.cfg.Scope.Allows(ns) && r.cfg.Scope.Selects(t, sel, nsLabels) {
			claimed[ns] = true
		}
	}
	return claimed
}

// NamespaceMark is the label k8ssync puts on every namespace bound to a
// tenant, the tenant's id; the guard policy lets nobody else set, change
// or remove it, so a namespace carrying it was bound by credbroker.
const NamespaceMark = LabelPrefix + "tenant"
