package broker

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NamespaceScope is where tenants may be bound, by list or by selector.
// The zero value allows every namespace but kube-*.
type NamespaceScope struct {
	// Reserved namespaces are never bound: every kube-* namespace (the
	// control plane's) and these (the broker's own among them, where its
	// state lives).
	Reserved []string
	// Granted, when not nil, is namespaced mode: the broker holds Secret
	// rights only in these namespaces (RoleBindings the platform
	// provisions), so no other is ever bound.
	Granted []string
	// SelectorPrefix is the platform-owned prefix of the label keys a
	// namespace selector may use ("tenants.credbroker.io/"), which the
	// guard policy lets only the platform's identities set on a Namespace
	// (DESIGN.md §17): a selector on any other key would bind whatever
	// namespace its own users label so. Empty puts no bound on the keys:
	// only for tests and embedders that guard the labels themselves;
	// credbroker serve always sets one (--namespace-label-prefix).
	SelectorPrefix string
}

// Allows reports whether a tenant may be bound to ns.
func (s NamespaceScope) Allows(ns string) bool {
	return !s.Reserves(ns) && s.Grants(ns)
}

// Reserves reports whether ns is reserved.
func (s NamespaceScope) Reserves(ns string) bool {
	return strings.HasPrefix(ns, "kube-") || slices.Contains(s.Reserved, ns)
}

// Grants reports whether the broker holds rights in ns: always but in
// namespaced mode.
func (s NamespaceScope) Grants(ns string) bool {
	return s.Granted == nil || slices.Contains(s.Granted, ns)
}

// Refusal says why no tenant may be bound to ns, or "" when one may.
func (s NamespaceScope) Refusal(ns string) string {
	switch {
	case s.Reserves(ns):
		return ns + " is reserved: no tenant is bound to it"
	case !s.Grants(ns):
		return "credbroker is not granted " + ns + " (it runs in namespaced mode): ask the platform to grant it"
	}
	return ""
}

// DefaultSelectorPrefix is the platform-owned label key prefix that
// tenants' namespace selectors must use unless the platform picks another
// (--namespace-label-prefix): a domain of credbroker's, so that it clashes
// with no label a cluster already has, and not credbroker.io/ itself,
// whose labels are credbroker's marks.
const DefaultSelectorPrefix = "tenants.credbroker.io/"

// Selects reports whether t's namespace selector (sel, parsed) binds a
// namespace with nsLabels. It is the one rule of binding by selector: the
// Syncer, the credential exchange's NamespaceOwners and the registration's
// claim check all ask it (and Claimant then settles overlaps). sel must
// match, and either every key of sel is under SelectorPrefix (labels only
// the platform may write), or the namespace already carries t's mark: a
// tenant whose selector predates the prefix keeps the namespaces it holds
// and binds no new one, since anyone who may label a namespace could make
// it match.
func (s NamespaceScope) Selects(t Tenant, sel labels.Selector, nsLabels map[string]string) bool {
	if sel == nil || !sel.Matches(labels.Set(nsLabels)) {
		return false
	}
	return nsLabels[NamespaceMark] == t.ID || s.protects(sel)
}

// protects reports whether every key of sel is under SelectorPrefix.
func (s NamespaceScope) protects(sel labels.Selector) bool {
	if s.SelectorPrefix == "" {
		return true
	}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		if !strings.HasPrefix(r.Key(), s.SelectorPrefix) {
			return false
		}
	}
	return true
}

// UnprotectedKeys returns the keys of t's selector outside SelectorPrefix,
// sorted: none for a tenant whose selector binds new namespaces, or that
// has none (or one that does not parse, which binds nothing).
func (s NamespaceScope) UnprotectedKeys(t Tenant) []string {
	if t.NamespaceSelector == "" || s.SelectorPrefix == "" {
		return nil
	}
	sel, err := labels.Parse(t.NamespaceSelector)
	if err != nil {
		return nil
	}
	reqs, _ := sel.Requirements()
	var keys []string
	for _, r := range reqs {
		if !strings.HasPrefix(r.Key(), s.SelectorPrefix) && !slices.Contains(keys, r.Key()) {
			keys = append(keys, r.Key())
		}
	}
	slices.Sort(keys)
	return keys
}

// SelectorFix says what to do about a selector on unprotected keys.
func (s NamespaceScope) SelectorFix(keys []string) string {
	return fmt.Sprintf("select on labels under %s, which only the platform's identities may set on a namespace (the guard policy refuses anyone else), "+
		"not on %s, which a namespace's own users can set; or list the namespaces",
		s.SelectorPrefix, strings.Join(keys, ", "))
}

// CheckSelectorPrefix refuses a prefix that cannot stand for a
// platform-owned label key prefix: a DNS subdomain and a slash
// ("tenants.credbroker.io/"), neither credbroker's marks (credbroker.io/)
// nor Kubernetes' own (kubernetes.io/, k8s.io/, which the API server sets
// on every namespace).
func CheckSelectorPrefix(prefix string) error {
	domain, ok := strings.CutSuffix(prefix, "/")
	switch {
	case !ok || domain == "":
		return fmt.Errorf("%q: want a DNS subdomain and a slash, such as tenants.credbroker.io/", prefix)
	case len(validation.IsDNS1123Subdomain(domain)) > 0:
		return fmt.Errorf("%q: %s is not a DNS subdomain: %s", prefix, domain, strings.Join(validation.IsDNS1123Subdomain(domain), "; "))
	case prefix == LabelPrefix:
		return fmt.Errorf("%q holds credbroker's own marks of namespaces: pick a prefix of its own, such as tenants.credbroker.io/", prefix)
	}
	for _, k8s := range []string{"kubernetes.io", "k8s.io"} {
		if domain == k8s || strings.HasSuffix(domain, "."+k8s) {
			return fmt.Errorf("%q is Kubernetes' own (labels the API server and its components set): pick a prefix of the platform's", prefix)
		}
	}
	return nil
}

// Claimant decides which tenant a namespace belongs to, from the tenants
// that list it and those whose selector matches it. Registration refuses a
// namespace listed by two tenants, but selectors can still come to
// overlap, and a tenant must never take a namespace from another by
// writing a selector: an explicit listing beats a selector; among several,
// the tenant whose Secret the namespace holds (holder, "" for none) keeps
// it; a namespace several claim and nobody holds goes to none.
func Claimant(listed, selected []string, holder string) (string, bool) {
	candidates := listed
	if len(candidates) == 0 {
		candidates = selected
	}
	switch {
	case len(candidates) == 1:
		return candidates[0], true
	case holder != "" && slices.Contains(candidates, holder):
		return holder, true
	}
	return "", false
}
