package k8ssync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/credbroker/credbroker/internal/testenv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credbroker/credbroker/broker"
)

func tenant(id string, edit ...func(*broker.Tenant)) broker.Tenant {
	t := broker.Tenant{ID: id, Owner: broker.Owner{Login: "acme", ID: 1, Type: broker.OwnerOrganization},
		Registries: []string{"ghcr.io"}, SecretName: "ghcr-secret"}
	for _, e := range edit {
		e(&t)
	}
	return t
}

func credential(token string) broker.Credential {
	return broker.Credential{Kind: broker.KindPAT, Username: "acme-bot", Token: token,
		ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second)}
}

// unique returns a name no other test uses: namespaces cannot be deleted
// for good without kube-controller-manager, so tests never share them.
func unique(prefix string) string { return fmt.Sprintf("%s-%06d", prefix, rand.IntN(1_000_000)) }

func createNamespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	requireCluster(t)
	_, err := admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func getSecret(t testing.TB, ns, name string) (*corev1.Secret, bool) {
	t.Helper()
	s, err := admin.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return s, true
}

// holds reports whether ns has the tenant's Secret with cred.
func holds(t testing.TB, ns string, cred broker.Credential) (bool, string) {
	s, ok := getSecret(t, ns, "ghcr-secret")
	switch {
	case !ok:
		return false, ns + ": no Secret"
	case s.Annotations[AnnotationFingerprint] != cred.Fingerprint():
		return false, ns + ": Secret holds fingerprint " + s.Annotations[AnnotationFingerprint]
	}
	return true, ""
}

// publish publishes cred to tn, and the further registries' entries.
func publish(t testing.TB, s *testSyncer, tn broker.Tenant, cred broker.Credential, registryAuths ...broker.RegistryAuth) {
	t.Helper()
	if err := s.Publish(context.Background(), tn, payloadOf(tn, cred, registryAuths...)); err != nil {
		t.Fatal(err)
	}
}

// payloadOf is what tn's pull Secrets carry with cred, as the Refresher
// builds it.
func payloadOf(tn broker.Tenant, cred broker.Credential, registryAuths ...broker.RegistryAuth) broker.SecretPayload {
	return broker.SecretPayload{Credential: cred, Registries: tn.Registries, RegistryAuths: registryAuths}
}

// settle waits until the syncer has reconciled at least n more namespaces
// than it had at the time of the call that returned before, and owes
// nothing (see idle).
func settle(t testing.TB, s *testSyncer, before int64, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := s.reconciles.Load() - before
		return got >= int64(n) && s.idle(), fmt.Sprintf("%d of %d reconciles, %s", got, n, s.owes())
	})
}

// waitForEvent waits for a Warning Event from credbroker in ns with the
// given reason for which match holds.
func waitForEvent(t testing.TB, ns, reason string, match func(corev1.Event) bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		events, err := admin.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range events.Items {
			if e.Reason == reason && e.Source.Component == Component && e.Type == corev1.EventTypeWarning && match(e) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no %s event among %d", reason, len(events.Items))
	})
}

// idle waits until the syncer owes nothing in either lane: no namespace
// queued, being reconciled, or waiting out the backoff of a failed
// reconcile (which comes back, and writes). Its counters are then final
// until something changes: a publication, a change in the cluster (whose
// watch event comes when it comes), a delayed recheck come due.
func idle(t testing.TB, s *testSyncer) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() (bool, string) { return s.idle(), s.owes() })
}

// idle reports whether the syncer owes nothing in either lane. Each lane's
// count has no gap (a namespace counts from its Add to its Done, and through
// its backoff). The first-publication lane is read first: a reconcile there
// may queue its namespace in the main lane (a robot's rotation come due),
// where it counts before it stops counting in the first; nothing is queued
// the other way but by the test itself or through the cluster.
func (s *testSyncer) idle() bool { return s.firstPublications.Owed() == 0 && s.queue.Owed() == 0 }

func (s *testSyncer) owes() string {
	return fmt.Sprintf("syncer still owes %d namespaces in the main lane and %d in the first-publication lane", s.queue.Owed(), s.firstPublications.Owed())
}

func TestOneRotationWritesEachNamespaceOnce(t *testing.T) {
	requireCluster(t)
	const n = 50
	s := startSyncer(t, Config{})
	label := unique("fan")
	var nss []string
	for i := range n {
		ns := fmt.Sprintf("%s-%02d", label, i)
		createNamespace(t, ns, map[string]string{"fanout": label})
		nss = append(nss, ns)
	}
	tn := tenant("fan", func(t *broker.Tenant) {
		t.NamespaceSelector = "fanout=" + label
		t.Registries = []string{"ghcr.io", "registry.local:5000"}
	})

	first := credential("ghp_first0000000000000000000000000000000")
	publish(t, s, tn, first)
	allHold := func(cred broker.Credential) func() (bool, string) {
		return func() (bool, string) {
			for _, ns := range nss {
				if ok, why := holds(t, ns, cred); !ok {
					return false, why
				}
			}
			return true, ""
		}
	}
	testenv.Eventually(t, 60*time.Second, allHold(first))
	idle(t, s)
	if w := s.Writes(); w != n {
		t.Errorf("first publication: %d writes, want %d", w, n)
	}

	versions := map[string]string{}
	for _, ns := range nss {
		sec, _ := getSecret(t, ns, "ghcr-secret")
		versions[ns] = sec.ResourceVersion
	}
	before := s.reconciles.Load()
	publish(t, s, tn, first) // the same credential again
	settle(t, s, before, n)
	if w := s.Writes(); w != n {
		t.Errorf("identical publication: %d writes in all, want still %d", w, n)
	}
	for _, ns := range nss {
		if sec, _ := getSecret(t, ns, "ghcr-secret"); sec.ResourceVersion != versions[ns] {
			t.Errorf("%s: resourceVersion %s -> %s on an identical publication", ns, versions[ns], sec.ResourceVersion)
		}
	}

	second := credential("ghp_second000000000000000000000000000000")
	publish(t, s, tn, second)
	testenv.Eventually(t, 60*time.Second, allHold(second))
	idle(t, s)
	if w := s.Writes(); w != 2*n {
		t.Errorf("rotation: %d writes in all, want %d", w, 2*n)
	}

	sec, _ := getSecret(t, nss[0], "ghcr-secret")
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		t.Fatal(err)
	}
	wantAuth := base64.StdEncoding.EncodeToString([]byte("acme-bot:" + second.Token))
	for _, reg := range tn.Registries {
		if a := cfg.Auths[reg]; a.Username != "acme-bot" || a.Password != second.Token || a.Auth != wantAuth {
			t.Errorf("auths[%s] = %+v", reg, a)
		}
	}
	if sec.Type != corev1.SecretTypeDockerConfigJson || sec.Labels[LabelTenant] != "fan" || sec.Labels[LabelManagedBy] != ManagedByValue {
		t.Errorf("Secret type %s labels %v", sec.Type, sec.Labels)
	}
	if got := sec.Annotations[AnnotationExpiry]; got != second.ExpiresAt.UTC().Format(time.RFC3339) {
		t.Errorf("expiry annotation %q", got)
	}
	if st := s.Status("fan"); len(st) != n || st[0].State != broker.SyncSynced || st[0].Fingerprint != second.Fingerprint() {
		t.Errorf("status: %d namespaces, first %+v", len(st), st[0])
	}
}

func TestDriftIsRepaired(t *testing.T) {
	ctx := context.Background()
	s := startSyncer(t, Config{})
	ns := unique("drift")
	createNamespace(t, ns, nil)
	cred := credential("ghp_drift000000000000000000000000000000")
	publish(t, s, tenant("drift", func(t *broker.Tenant) { t.Namespaces = []string{ns} }), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })

	if err := admin.CoreV1().Secrets(ns).Delete(ctx, "ghcr-secret", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })

	sec, _ := getSecret(t, ns, "ghcr-secret")
	sec.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"ghcr.io":{"auth":"aGFuZDplZGl0"}}}`)
	if _, err := admin.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		sec, _ := getSecret(t, ns, "ghcr-secret")
		return string(sec.Data[corev1.DockerConfigJsonKey]) == string(broker.DockerConfigJSON([]string{"ghcr.io"}, cred)), "hand edit not undone"
	})

	// A label someone else adds is not drift. (Create, re-create, restore:
	// three writes, counted once the restore has returned.)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return s.Writes() == 3, fmt.Sprintf("%d writes", s.Writes()) })
	writes, before := s.Writes(), s.reconciles.Load()
	sec, _ = getSecret(t, ns, "ghcr-secret")
	sec.Labels["team"] = "payments"
	if _, err := admin.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, before, 1)
	if s.Writes() != writes {
		t.Error("a foreign label caused a write")
	}
}

func TestNewMatchingNamespaceGetsItsSecret(t *testing.T) {
	s := startSyncer(t, Config{})
	label := unique("late")
	cred := credential("ghp_late0000000000000000000000000000000")
	publish(t, s, tenant("late", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label }), cred)
	ns := unique("late")
	createNamespace(t, ns, map[string]string{"team": label})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })

	// An explicitly listed namespace created after the tenant is bound too.
	explicit := unique("late-explicit")
	publish(t, s, tenant("late", func(t *broker.Tenant) {
		t.NamespaceSelector = "team=" + label
		t.Namespaces = []string{explicit}
	}), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		st := s.Status("late")
		i := slices.IndexFunc(st, func(n broker.NamespaceSync) bool { return n.Namespace == explicit })
		return i >= 0 && st[i].State == broker.SyncPending, fmt.Sprintf("status %+v", st)
	})
	createNamespace(t, explicit, nil)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, explicit, cred) })
}

func TestUnbindingDeletesOnlyOurSecrets(t *testing.T) {
	ctx := context.Background()
	s := startSyncer(t, Config{})
	label := unique("unbind")
	a, b := unique("unbind-a"), unique("unbind-b")
	createNamespace(t, a, map[string]string{"team": label})
	createNamespace(t, b, map[string]string{"team": label})
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-ours", Namespace: b}, StringData: map[string]string{"k": "v"}}
	if _, err := admin.CoreV1().Secrets(b).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cred := credential("ghp_unbind00000000000000000000000000000")
	publish(t, s, tenant("unbind", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label }), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		okA, why := holds(t, a, cred)
		okB, whyB := holds(t, b, cred)
		return okA && okB, why + whyB
	})

	nsA, err := admin.CoreV1().Namespaces().Get(ctx, a, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsA.Labels["team"] = "elsewhere"
	if _, err := admin.CoreV1().Namespaces().Update(ctx, nsA, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, exists := getSecret(t, a, "ghcr-secret")
		return !exists, "Secret stays in a namespace that no longer matches"
	})

	if err := s.Remove(ctx, "unbind"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, exists := getSecret(t, b, "ghcr-secret")
		return !exists, "Secret of a removed tenant stays"
	})
	if _, exists := getSecret(t, b, "not-ours"); !exists {
		t.Error("an unmanaged Secret was deleted")
	}
	if st := s.Status("unbind"); len(st) != 0 {
		t.Errorf("a removed tenant still has status %+v", st)
	}
}

func TestUnmanagedSecretIsNeverTouched(t *testing.T) {
	ctx := context.Background()
	s := startSyncer(t, Config{})
	ns := unique("conflict")
	createNamespace(t, ns, nil)
	theirs, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ghcr-secret", Namespace: ns},
		StringData: map[string]string{"hand": "made"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s, tenant("conflict", func(t *broker.Tenant) { t.Namespaces = []string{ns} }), credential("ghp_conflict0000000000000000000000000000"))
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		st := s.Status("conflict")
		return len(st) == 1 && st[0].State == broker.SyncConflict && st[0].Reason == broker.ReasonSecretConflict, fmt.Sprintf("status %+v", st)
	})
	if got, _ := getSecret(t, ns, "ghcr-secret"); got.ResourceVersion != theirs.ResourceVersion || got.Type != corev1.SecretTypeOpaque {
		t.Errorf("the unmanaged Secret was modified: %+v", got)
	}
	waitForEvent(t, ns, "SecretConflict", func(corev1.Event) bool { return true })
}

func TestServiceAccountsGetThePullSecretOnce(t *testing.T) {
	ctx := context.Background()
	s := startSyncer(t, Config{})
	ns, late := unique("sa"), unique("sa-late")
	createNamespace(t, ns, nil)
	createNamespace(t, late, nil)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "someone-elses"}}}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tn := tenant("sa", func(t *broker.Tenant) { t.Namespaces = []string{ns, late}; t.PatchServiceAccounts = true })
	cred := credential("ghp_sa000000000000000000000000000000000")
	publish(t, s, tn, cred)
	pullSecrets := func(ns string) []string {
		sa, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		var names []string
		for _, r := range sa.ImagePullSecrets {
			names = append(names, r.Name)
		}
		return names
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := pullSecrets(ns)
		return slices.Equal(got, []string{"someone-elses", "ghcr-secret"}), fmt.Sprintf("imagePullSecrets %v", got)
	})

	// Publishing again changes nothing: no duplicate, no write. (The first
	// publication is over first: the ServiceAccount above can be seen
	// before its write is counted, and the other namespace's Secret can
	// come after it.)
	idle(t, s)
	writes, before := s.Writes(), s.reconciles.Load()
	publish(t, s, tn, cred)
	settle(t, s, before, 2)
	if s.Writes() != writes || len(pullSecrets(ns)) != 2 {
		t.Errorf("republishing wrote %d times; imagePullSecrets %v", s.Writes()-writes, pullSecrets(ns))
	}

	// A ServiceAccount created after its namespace is patched when it appears.
	if _, err := admin.CoreV1().ServiceAccounts(late).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: late}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := pullSecrets(late)
		return slices.Equal(got, []string{"ghcr-secret"}), fmt.Sprintf("late imagePullSecrets %v", got)
	})
}

// A selector never takes a namespace from the tenant that holds it: when a
// second selector comes to match, the holder keeps its Secret and the
// newcomer is told; a namespace two selectors match from the start goes to
// neither; an explicit listing beats a selector.
func TestOverlappingSelectorsKeepTheHolder(t *testing.T) {
	s := startSyncer(t, Config{})
	label := unique("overlap")
	ns := unique("overlap")
	createNamespace(t, ns, map[string]string{"team": label})
	credA, credB := credential("ghp_overlapA00000000000000000000000000"), credential("ghp_overlapB00000000000000000000000000")
	conflicted := func(tenantID, ns string) func() (bool, string) {
		return func() (bool, string) {
			st := s.Status(tenantID)
			i := slices.IndexFunc(st, func(n broker.NamespaceSync) bool { return n.Namespace == ns })
			return i >= 0 && st[i].State == broker.SyncConflict && st[i].Reason == broker.ReasonNamespaceClaimed,
				fmt.Sprintf("%s status %+v", tenantID, st)
		}
	}
	publish(t, s, tenant("overlap-b", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label }), credB)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, credB) })
	// overlap-a sorts first, and once took the namespace for it. Its
	// selector says overlap-b's another way and reaches no other test's
	// namespaces: there, Secrets of tenants this syncer never heard of
	// hold the name, and it would retry them for good (never idle).
	other := "team in (" + label + ")"
	publish(t, s, tenant("overlap-a", func(t *broker.Tenant) { t.NamespaceSelector = other }), credA)
	testenv.Eventually(t, 30*time.Second, conflicted("overlap-a", ns))
	idle(t, s)
	if ok, why := holds(t, ns, credB); !ok {
		t.Errorf("the holder lost the namespace to a newcomer's selector: %s", why)
	}

	// A namespace both selectors match from the start goes to neither.
	both := unique("overlap-new")
	createNamespace(t, both, map[string]string{"team": label})
	testenv.Eventually(t, 30*time.Second, conflicted("overlap-a", both))
	testenv.Eventually(t, 30*time.Second, conflicted("overlap-b", both))
	idle(t, s)
	if _, ok := getSecret(t, both, "ghcr-secret"); ok {
		t.Error("a namespace two selectors claim from the start got a Secret")
	}

	// An explicit listing beats the selector that holds the namespace.
	publish(t, s, tenant("overlap-a", func(t *broker.Tenant) {
		t.NamespaceSelector = other
		t.Namespaces = []string{ns}
	}), credA)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, credA) })
	testenv.Eventually(t, 30*time.Second, conflicted("overlap-b", ns))
}

func TestCredentialProblemsBecomeEvents(t *testing.T) {
	s := startSyncer(t, Config{})
	ns := unique("problem")
	createNamespace(t, ns, nil)
	cred := credential("ghp_problem000000000000000000000000000")
	publish(t, s, tenant("problem", func(t *broker.Tenant) { t.Namespaces = []string{ns} }), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		st := s.Status("problem")
		return len(st) == 1 && st[0].State == broker.SyncSynced, "not synced"
	})
	s.Report("problem", broker.ReasonInstallationSuspended, "installation 42 is suspended")
	waitForEvent(t, ns, "CredentialProblem", func(e corev1.Event) bool {
		return e.InvolvedObject.Name == "ghcr-secret" && e.Message == "INSTALLATION_SUSPENDED: installation 42 is suspended"
	})
}

func TestOrphansGoOnlyOnceEveryTenantIsPublished(t *testing.T) {
	ns := unique("orphan")
	createNamespace(t, ns, nil)
	old := startSyncer(t, Config{})
	cred := credential("ghp_orphan0000000000000000000000000000")
	publish(t, old, tenant("orphan", func(t *broker.Tenant) { t.Namespaces = []string{ns} }), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })

	// A new leader that has not heard of the tenant yet leaves its Secret.
	fresh := startSyncer(t, Config{})
	before := fresh.reconciles.Load()
	fresh.queue.Add(ns)
	settle(t, fresh, before, 1)
	if ok, why := holds(t, ns, cred); !ok {
		t.Fatalf("a syncer that was not told all tenants deleted a Secret: %s", why)
	}
	// Told that it knows every tenant, it removes the orphan.
	fresh.PublishedAll()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, exists := getSecret(t, ns, "ghcr-secret")
		return !exists, "orphaned Secret stays"
	})
}

func TestInformerCachesDropManagedFields(t *testing.T) {
	sec, err := digestSecretData(&corev1.Secret{Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}})
	if err != nil || !sameDigest(sec.(*corev1.Secret).Data[".dockerconfigjson"], []byte(`{"auths":{}}`)) || sameDigest(sec.(*corev1.Secret).Data[".dockerconfigjson"], []byte(`{}`)) {
		t.Errorf("cached Secret data is not the digest of the value: %v", err)
	}
	for _, obj := range []metav1.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "credbroker"}}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}},
	} {
		out, err := dropManagedFields(obj)
		if err != nil {
			t.Fatal(err)
		}
		if mf := out.(metav1.Object).GetManagedFields(); mf != nil || out.(metav1.Object).GetName() == "" {
			t.Errorf("%T kept %v", obj, mf)
		}
	}
}

// A selector that matches reserved namespaces — kube-system, credbroker's
// own — writes nothing there, even when a tenant lists one explicitly
// (which registration refuses; a tenant stored before the rule must not get
// one either), while the other namespaces it matches get their Secret.
func TestReservedNamespacesNeverGetASecret(t *testing.T) {
	requireCluster(t)
	label := unique("reserved")
	for _, ns := range []string{"kube-system", "credbroker"} {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"team":%q}}}`, label)
		if _, err := admin.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := startSyncer(t, Config{Scope: broker.NamespaceScope{Reserved: []string{"credbroker"}}})
	cred := credential("ghp_reserved000000000000000000000000000")
	open := unique("reserved-open")
	createNamespace(t, open, map[string]string{"team": label})
	publish(t, s, tenant("greedy", func(t *broker.Tenant) {
		t.NamespaceSelector = "team=" + label
		t.Namespaces = []string{"kube-system"}
	}), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, open, cred) })
	idle(t, s)
	for _, ns := range []string{"kube-system", "credbroker"} {
		if _, ok := getSecret(t, ns, "ghcr-secret"); ok {
			t.Errorf("a pull Secret was written into reserved namespace %s", ns)
		}
	}
	if st := s.Status("greedy"); len(st) != 1 || st[0].Namespace != open {
		t.Errorf("status %+v, want only %s", st, open)
	}
}

// TestProviderModeHoldsTheNamespaceWithoutASecret: a tenant moved to
// PROVIDER loses its Secrets but not its namespaces (a selector tenant
// does not get them); moved to BOTH, it gets the Secret again.
func TestProviderModeHoldsTheNamespaceWithoutASecret(t *testing.T) {
	s := startSyncer(t, Config{})
	label := unique("provider")
	ns := unique("provider")
	createNamespace(t, ns, map[string]string{"team": label})
	cred := credential("ghp_providerMode000000000000000000000")
	owner := func(mode broker.PullMode) broker.Tenant {
		return tenant("provider-owner", func(t *broker.Tenant) { t.Namespaces, t.PullMode = []string{ns}, mode })
	}
	publish(t, s, owner(broker.PullSecret), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })
	publish(t, s, tenant("provider-selector", func(t *broker.Tenant) { t.NamespaceSelector = "team=" + label }), credential("ghp_providerOther00000000000000000000"))

	publish(t, s, owner(broker.PullProvider), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, ok := getSecret(t, ns, "ghcr-secret")
		return !ok, "the PROVIDER tenant's Secret is still there"
	})
	idle(t, s)
	if _, ok := getSecret(t, ns, "ghcr-secret"); ok {
		t.Error("the selector tenant took the namespace of a PROVIDER tenant")
	}
	publish(t, s, owner(broker.PullBoth), cred)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return holds(t, ns, cred) })
}
