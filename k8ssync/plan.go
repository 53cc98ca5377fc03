package k8ssync

import (
	"bytes"
	"crypto/sha256"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/credbroker/credbroker/broker"
)

// Planning one namespace: from what the caches show of it and what the
// Syncer knows of its tenants, which tenant it belongs to, what it should
// hold and what is said of it. Nothing here calls the API server, the clock
// or a lock, so every rule is a table test (plan_test.go); Syncer.apply
// (reconcile.go) carries a plan out.

// observed is what a reconcile knows of one namespace before it acts.
type observed struct {
	name string
	ns   *corev1.Namespace // nil: gone, or being deleted
	// managed are the pull Secrets of ours in the namespace.
	managed []*corev1.Secret
	// bindings are every tenant the Syncer knows, ordered by id.
	bindings []*binding
	// unannounced are the tenants (of managed, and of the namespace's
	// mark) whose Secrets and marks stay: see Syncer.unannounced.
	unannounced map[string]bool
	// robot is the namespace's in-cluster registry credential, if any.
	robot []broker.RegistryAuth
	now   time.Time
}

// rules are the Syncer's settings that a plan follows.
type rules struct {
	scope          broker.NamespaceScope
	images         broker.ImageRules
	markNamespaces bool
}

// secretWrite is how the owner's Secret is brought to what it should hold.
type secretWrite int

const (
	secretKept     secretWrite = iota // it holds it already
	secretCreated                     // there is none
	secretReplaced                    // of another type, which cannot change: delete, then create
	secretUpdated
)

// plan is what one namespace should hold and what is said of it.
type plan struct {
	name  string
	gone  bool     // the namespace is gone or going
	owner *binding // the tenant the namespace belongs to; nil: none
	// deletes are the managed Secrets that go.
	deletes []*corev1.Secret
	// reports are the states of every other tenant that binds or bound
	// the namespace.
	reports []report
	// mark is the mark to write, and had the one the namespace carries;
	// nil when the namespace carries the right one, or is not ours to mark.
	mark *mark
	had  mark
	// secret is what the owner's Secret should hold, nil when it holds
	// none (no owner, a PROVIDER tenant, no credential yet); current is
	// the one the cache shows, and write how one becomes the other.
	secret  *corev1.Secret
	current *corev1.Secret
	write   secretWrite
	now     time.Time
}

// report is what a tenant is told of the namespace; a nil state withdraws
// what it was told before.
type report struct {
	tenantID string
	state    *broker.NamespaceSync
}

// planNamespace decides what o's namespace should hold under r.
func planNamespace(o observed, r rules) plan {
	holder := ""
	if len(o.managed) > 0 {
		holder = o.managed[0].Labels[LabelTenant]
	}
	owner, others := claim(o, r.scope, holder)
	p := plan{name: o.name, gone: o.ns == nil, owner: owner, now: o.now}
	wantsSecret := owner != nil && owner.tenant.WantsSecrets()
	for _, sec := range o.managed {
		tenantID := sec.Labels[LabelTenant]
		switch {
		case wantsSecret && sec.Name == owner.tenant.SecretName && tenantID == owner.tenant.ID:
			p.current = sec
		case !o.unannounced[tenantID]:
			p.deletes = append(p.deletes, sec)
		}
	}
	p.reports = reportsOf(o, r.scope, owner, others)
	p.mark, p.had = markFor(o, r, owner)
	if wantsSecret && owner.payload.Credential.Token != "" {
		// A PROVIDER tenant holds the namespace with no Secret in it (the
		// credential provider hands its Pods the credential); a tenant bound
		// before its first credential keeps whatever Secret of its is there.
		p.secret = desiredSecret(o.name, owner, o.robot)
		p.write = writeOf(p.current, p.secret)
	}
	return p
}

// claim decides which tenant the namespace belongs to (broker.Claimant's
// rule, the credential provider's too); others are the other claimants.
func claim(o observed, scope broker.NamespaceScope, holder string) (owner *binding, others []*binding) {
	if o.ns == nil || !scope.Allows(o.name) {
		return nil, nil
	}
	var explicit, selected []string
	var claimants []*binding
	for _, b := range o.bindings {
		switch {
		case !b.binds(o.ns, scope):
			continue
		case slices.Contains(b.tenant.Namespaces, o.name):
			explicit = append(explicit, b.tenant.ID)
		default:
			selected = append(selected, b.tenant.ID)
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
	return owner, others
}

// binds reports whether b claims ns: listed, or selected by the rule of
// scope.Selects (the credential exchange's too).
func (b *binding) binds(ns *corev1.Namespace, scope broker.NamespaceScope) bool {
	return slices.Contains(b.tenant.Namespaces, ns.Name) || scope.Selects(b.tenant, b.selector, ns.Labels)
}

// reportsOf says to every tenant but the owner where it stands in the
// namespace: refused to it, out of its rights, waiting for it, or no
// longer concerned.
func reportsOf(o observed, scope broker.NamespaceScope, owner *binding, others []*binding) []report {
	var out []report
	for _, b := range o.bindings {
		st := broker.NamespaceSync{Namespace: o.name, SyncTime: o.now}
		switch {
		case b == owner:
			continue
		case slices.Contains(others, b):
			st.State, st.Reason, st.Message = broker.SyncConflict, broker.ReasonNamespaceClaimed, "namespace belongs to another tenant"
			if owner == nil {
				st.Message = "namespace is claimed by more than one tenant's selector, and none held it: it goes to none"
			}
		case o.ns != nil && b.binds(o.ns, scope) && !scope.Reserves(o.name) && !scope.Grants(o.name):
			// Namespaced mode: the tenant's selector reaches a namespace the
			// broker holds no rights in. (Reserved ones are passed over in
			// silence: registration already says no tenant gets them.)
			st.State, st.Reason, st.Message = broker.SyncFailed, broker.ReasonSyncFailed, scope.Refusal(o.name)
		case o.ns == nil && slices.Contains(b.tenant.Namespaces, o.name):
			st = broker.NamespaceSync{Namespace: o.name, State: broker.SyncPending, Message: "namespace does not exist"}
		default:
			out = append(out, report{tenantID: b.tenant.ID})
			continue
		}
		out = append(out, report{tenantID: b.tenant.ID, state: &st})
	}
	return out
}

// markFor returns the mark the namespace must carry when it differs from
// the one it has (had). Without an owner that is no mark, but the mark of a
// tenant not yet published is kept, as its Secrets are: a new leader must
// not lift the policy while it catches up.
func markFor(o observed, r rules, owner *binding) (want *mark, had mark) {
	if !r.markNamespaces || o.ns == nil || !r.scope.Allows(o.name) {
		return nil, mark{}
	}
	had = markOf(o.ns)
	var m mark
	if owner != nil {
		// The tenant and the scopes its Pods may run images from there (the
		// namespace's own on the in-cluster registry among them).
		m = mark{tenant: owner.tenant.ID, scopes: strings.Join(r.images.ScopesIn(owner.tenant, o.name), " ")}
	}
	if had == m || (m == (mark{}) && o.unannounced[had.tenant]) {
		return nil, had
	}
	return &m, had
}

// writeOf is how current (nil: none) becomes want.
func writeOf(current, want *corev1.Secret) secretWrite {
	switch {
	case current == nil:
		return secretCreated
	case upToDate(current, want):
		return secretKept
	case current.Type != want.Type:
		return secretReplaced
	}
	return secretUpdated
}

// desiredSecret is the Secret a namespace of b's should hold: b's payload,
// and the namespace's robot beside it when there is one. It is the one
// place a payload is rendered.
func desiredSecret(namespace string, b *binding, robot []broker.RegistryAuth) *corev1.Secret {
	cred := b.payload.Credential
	annotations := map[string]string{AnnotationFingerprint: cred.Fingerprint()}
	if !cred.ExpiresAt.IsZero() {
		annotations[AnnotationExpiry] = cred.ExpiresAt.UTC().Format(time.RFC3339)
	}
	sec := secretOf(namespace, b)
	sec.Labels = map[string]string{LabelManagedBy: ManagedByValue, LabelTenant: b.tenant.ID}
	sec.Annotations = annotations
	sec.Type = corev1.SecretTypeDockerConfigJson
	sec.Data = map[string][]byte{corev1.DockerConfigJsonKey: b.payload.DockerConfigJSON(robot...)}
	return sec
}

// upToDate reports whether actual holds what desired asks for. Only our keys
// count: labels and annotations others add are left alone, and the sync-time
// annotation does not make a Secret stale.
func upToDate(actual, desired *corev1.Secret) bool {
	if actual.Type != desired.Type || !maps.EqualFunc(actual.Data, desired.Data, sameDigest) {
		return false
	}
	for k, v := range desired.Labels {
		if actual.Labels[k] != v {
			return false
		}
	}
	for _, k := range []string{AnnotationFingerprint, AnnotationExpiry} {
		if actual.Annotations[k] != desired.Annotations[k] {
			return false
		}
	}
	return true
}

// sameDigest reports whether cached (a digest, see digestSecretData) is the
// digest of value.
func sameDigest(cached, value []byte) bool {
	sum := sha256.Sum256(value)
	return bytes.Equal(cached, sum[:])
}
