package k8ssync

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/broker"
)

// TestPlanningANamespace: who a namespace belongs to, what it holds, what
// goes, which mark it carries and what each tenant is told, decided from
// the caches' view alone (no API server).
func TestPlanningANamespace(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cred := broker.Credential{Kind: broker.KindPAT, Username: "acme-bot", Token: "token-1", ExpiresAt: now.Add(time.Hour)}
	bound := func(id string, edit ...func(*broker.Tenant)) *binding {
		b := &binding{tenant: tenant(id, edit...)}
		b.payload = broker.SecretPayload{Credential: cred, Registries: b.tenant.Registries}
		if b.tenant.NamespaceSelector != "" {
			b.selector = labels.SelectorFromSet(labels.Set{"team": "web"})
		}
		return b
	}
	listing := func(ns ...string) func(*broker.Tenant) { return func(t *broker.Tenant) { t.Namespaces = ns } }
	selecting := func(t *broker.Tenant) { t.NamespaceSelector = "team=web" }
	namespace := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	web := namespace("web", map[string]string{"team": "web"})
	secretOfTenant := func(b *binding) *corev1.Secret {
		sec := desiredSecret("web", b, nil)
		sum := sec.Data[corev1.DockerConfigJsonKey]
		sec.Data = map[string][]byte{corev1.DockerConfigJsonKey: digest(sum)}
		return sec
	}
	a, c := bound("a", listing("web")), bound("c", listing("web"))
	selA, selB := bound("a", selecting), bound("b", selecting)
	provider := bound("a", listing("web"), func(t *broker.Tenant) { t.PullMode = broker.PullProvider })
	unpublished := bound("a", listing("web"))
	unpublished.payload = broker.SecretPayload{}
	stale := secretOfTenant(a)
	stale.Data[corev1.DockerConfigJsonKey] = digest([]byte("old"))
	opaque := secretOfTenant(a)
	opaque.Type = corev1.SecretTypeOpaque

	for _, tc := range []struct {
		name  string
		o     observed
		rules rules
		want  string // owner; write; deletes; reports; mark
	}{
		{"a listed namespace gets its tenant's Secret",
			observed{ns: web, bindings: []*binding{a}}, rules{},
			"owner a; create; deletes []; reports []; mark -"},
		{"an explicit claim beats a selector",
			observed{ns: web, bindings: []*binding{a, selB}}, rules{},
			"owner a; create; deletes []; reports [b CONFLICT namespace belongs to another tenant]; mark -"},
		{"two selectors and no holder: none gets it",
			observed{ns: web, bindings: []*binding{selA, selB}}, rules{},
			"owner -; none; deletes []; reports [a CONFLICT namespace is claimed by more than one tenant's selector, and none held it: it goes to none, b CONFLICT namespace is claimed by more than one tenant's selector, and none held it: it goes to none]; mark -"},
		{"of two selectors the holder keeps it",
			observed{ns: web, bindings: []*binding{selA, selB}, managed: []*corev1.Secret{secretOfTenant(bound("b"))}}, rules{},
			"owner b; kept; deletes []; reports [a CONFLICT namespace belongs to another tenant]; mark -"},
		{"another tenant's Secret goes",
			observed{ns: web, bindings: []*binding{a}, managed: []*corev1.Secret{secretOfTenant(c)}}, rules{},
			"owner a; create; deletes [c]; reports []; mark -"},
		{"an unannounced tenant's Secret stays",
			observed{ns: web, bindings: []*binding{a}, managed: []*corev1.Secret{secretOfTenant(c)}, unannounced: map[string]bool{"c": true}}, rules{},
			"owner a; create; deletes []; reports []; mark -"},
		{"a gone namespace keeps nothing and its listing tenant waits",
			observed{bindings: []*binding{a}, managed: []*corev1.Secret{secretOfTenant(a)}}, rules{markNamespaces: true},
			"owner -; none; deletes [a]; reports [a PENDING namespace does not exist]; mark -"},
		{"a reserved namespace is nobody's, in silence",
			observed{ns: web, bindings: []*binding{a}}, rules{scope: broker.NamespaceScope{Reserved: []string{"web"}}},
			"owner -; none; deletes []; reports [a cleared]; mark -"},
		{"a namespace without rights is refused to the tenant",
			observed{ns: web, bindings: []*binding{a}}, rules{scope: broker.NamespaceScope{Granted: []string{"other"}}},
			"owner -; none; deletes []; reports [a FAILED " + broker.NamespaceScope{Granted: []string{"other"}}.Refusal("web") + "]; mark -"},
		{"a PROVIDER tenant holds it without a Secret, and its Secret goes",
			observed{ns: web, bindings: []*binding{provider}, managed: []*corev1.Secret{secretOfTenant(a)}}, rules{},
			"owner a; none; deletes [a]; reports []; mark -"},
		{"a tenant bound before its credential keeps its Secret",
			observed{ns: web, bindings: []*binding{unpublished}, managed: []*corev1.Secret{secretOfTenant(a)}}, rules{},
			"owner a; none; deletes []; reports []; mark -"},
		{"an up-to-date Secret is kept",
			observed{ns: web, bindings: []*binding{a}, managed: []*corev1.Secret{secretOfTenant(a)}}, rules{},
			"owner a; kept; deletes []; reports []; mark -"},
		{"a stale Secret is updated",
			observed{ns: web, bindings: []*binding{a}, managed: []*corev1.Secret{stale}}, rules{},
			"owner a; update; deletes []; reports []; mark -"},
		{"a Secret of another type is replaced",
			observed{ns: web, bindings: []*binding{a}, managed: []*corev1.Secret{opaque}}, rules{},
			"owner a; replace; deletes []; reports []; mark -"},
		{"an owned namespace is marked with its tenant",
			observed{ns: web, bindings: []*binding{a}}, rules{markNamespaces: true},
			"owner a; create; deletes []; reports []; mark a ghcr.io/acme"},
		{"a namespace nobody owns loses its mark",
			observed{ns: marked(web, "c"), bindings: []*binding{}}, rules{markNamespaces: true},
			"owner -; none; deletes []; reports []; mark none"},
		{"an unannounced tenant's mark stays",
			observed{ns: marked(web, "c"), unannounced: map[string]bool{"c": true}}, rules{markNamespaces: true},
			"owner -; none; deletes []; reports []; mark -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.name, tc.o.now = "web", now
			if got := describe(planNamespace(tc.o, tc.rules)); got != tc.want {
				t.Errorf("plan:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestAPlannedSecretCarriesThePayloadAndTheRobot: the one rendering.
func TestAPlannedSecretCarriesThePayloadAndTheRobot(t *testing.T) {
	b := &binding{tenant: tenant("a"), payload: broker.SecretPayload{
		Credential:    broker.Credential{Username: "acme-bot", Token: "token-1"},
		Registries:    []string{"ghcr.io"},
		RegistryAuths: []broker.RegistryAuth{{Host: "quay.io", Username: "acme+robot", Password: "quay"}},
	}}
	sec := desiredSecret("web", b, []broker.RegistryAuth{{Host: "registry.internal:5000", Username: "robot.web", Password: "pw"}})
	var cfg struct {
		Auths map[string]struct{ Username, Password string }
	}
	if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Auths["ghcr.io"].Password != "token-1" || cfg.Auths["quay.io"].Password != "quay" || cfg.Auths["registry.internal:5000"].Password != "pw" {
		t.Errorf("auths %v", cfg.Auths)
	}
	if sec.Namespace != "web" || sec.Name != "ghcr-secret" || sec.Labels[LabelTenant] != "a" || !isManaged(sec) {
		t.Errorf("secret %s/%s labels %v", sec.Namespace, sec.Name, sec.Labels)
	}
}

func digest(v []byte) []byte {
	sec, _ := digestSecretData(&corev1.Secret{Data: map[string][]byte{"v": v}})
	return sec.(*corev1.Secret).Data["v"]
}

func marked(ns *corev1.Namespace, tenantID string) *corev1.Namespace {
	ns = ns.DeepCopy()
	ns.Labels = map[string]string{admission.LabelTenant: tenantID}
	return ns
}

// describe is a plan in one line, for the table.
func describe(p plan) string {
	owner := "-"
	if p.owner != nil {
		owner = p.owner.tenant.ID
	}
	write := map[secretWrite]string{secretKept: "kept", secretCreated: "create", secretReplaced: "replace", secretUpdated: "update"}[p.write]
	if p.secret == nil {
		write = "none"
	}
	var deletes, reports []string
	for _, sec := range p.deletes {
		deletes = append(deletes, sec.Labels[LabelTenant])
	}
	for _, r := range p.reports {
		if r.state == nil {
			reports = append(reports, r.tenantID+" cleared")
			continue
		}
		reports = append(reports, r.tenantID+" "+string(r.state.State)+" "+r.state.Message)
	}
	mark := "-"
	if p.mark != nil {
		mark = strings.TrimSpace(p.mark.tenant + " " + p.mark.scopes)
		if mark == "" {
			mark = "none"
		}
	}
	return "owner " + owner + "; " + write + "; deletes [" + strings.Join(deletes, ", ") + "]; reports [" + strings.Join(reports, ", ") + "]; mark " + mark
}
