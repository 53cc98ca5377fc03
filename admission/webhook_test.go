package admission

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credbroker/credbroker/broker"
)

// owners binds namespace "web" to tenant web, owner acme on ghcr.io.
type owners struct{ err error }

func (o owners) NamespaceOwner(ns string) (broker.Tenant, bool, error) {
	if o.err != nil {
		return broker.Tenant{}, false, o.err
	}
	if ns != "web" {
		return broker.Tenant{}, false, nil
	}
	return broker.Tenant{ID: "web", Owner: broker.Owner{Login: "acme", ID: 1}, Registries: []string{"ghcr.io"}, PullMode: broker.PullProvider}, true, nil
}

type readiness struct{ err error }

func (r readiness) CredentialReady(broker.Tenant) error { return r.err }

func podJSON(images ...string) string {
	var containers []string
	for i, image := range images {
		containers = append(containers, fmt.Sprintf(`{"name":"c%d","image":%q}`, i, image))
	}
	return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[` + strings.Join(containers, ",") + `]}}`
}

func tokenRequestJSON(audiences ...string) string {
	raw, _ := json.Marshal(audiences)
	return `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":` + string(raw) +
		`,"boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":"app-1"}}}`
}

func TestWebhookJudgesLikeThePolicy(t *testing.T) {
	pod := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	cronJob := metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}
	tokenRequest := metav1.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}
	notReady := &broker.DeniedError{Denial: broker.DenyCredentialNotReady, TenantID: "web", Msg: "tenant web has no credential published yet"}
	tests := []struct {
		name      string
		ns        string
		op        admissionv1.Operation
		kind      metav1.GroupVersionKind
		sub       string
		object    string
		old       string
		ready     error
		allowed   bool
		message   string // in the refusal, or in the warning
		warnings  int
		httpError int
		user      string
		groups    []string
	}{
		{name: "own image", ns: "web", op: admissionv1.Create, kind: pod, object: podJSON("ghcr.io/acme/app:1"), allowed: true},
		{name: "another owner's", ns: "web", op: admissionv1.Create, kind: pod, object: podJSON("ghcr.io/acme/app:1", "ghcr.io/evil/app:1"),
			message: "image ghcr.io/evil/app:1 (WRONG_OWNER)"},
		{name: "Docker Hub", ns: "web", op: admissionv1.Create, kind: pod, object: podJSON("busybox"), message: "(IMPLICIT_DOCKER_HUB)"},
		{name: "a public scope's image", ns: "web", op: admissionv1.Create, kind: pod, object: podJSON("ghcr.io/acme/app:1", "docker.io/istio/proxyv2:1.22"), allowed: true},
		{name: "the namespace's own repository on the in-cluster registry", ns: "web", op: admissionv1.Create, kind: pod,
			object: podJSON("registry.cluster.internal:5000/cluster.local/web/app:1", "registry.cluster.internal:5000/platform/base:1"), allowed: true},
		{name: "another namespace's repository on the in-cluster registry", ns: "web", op: admissionv1.Create, kind: pod,
			object: podJSON("registry.cluster.internal:5000/cluster.local/shop/app:1"), message: "(WRONG_OWNER)"},
		{name: "unbound namespace", ns: "other", op: admissionv1.Create, kind: pod, object: podJSON("ghcr.io/evil/app:1"), allowed: true},
		{name: "a CronJob's template", ns: "web", op: admissionv1.Create, kind: cronJob,
			object: `{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"quay.io/acme/x"}]}}}}}}`, message: "(WRONG_REGISTRY)"},
		{name: "an update judges only what it adds", ns: "web", op: admissionv1.Update, kind: pod,
			object: podJSON("ghcr.io/evil/old:1", "ghcr.io/acme/new:1"), old: podJSON("ghcr.io/evil/old:1"), allowed: true},
		{name: "an ephemeral container", ns: "web", op: admissionv1.Update, kind: pod, sub: "ephemeralcontainers",
			object: `{"spec":{"containers":[{"image":"ghcr.io/acme/app:1"}],"ephemeralContainers":[{"name":"dbg","image":"busybox"}]}}`,
			old:    podJSON("ghcr.io/acme/app:1"), message: "image busybox (IMPLICIT_DOCKER_HUB)"},
		{name: "a status update is not judged", ns: "web", op: admissionv1.Update, kind: pod, sub: "status", object: podJSON("busybox"), allowed: true},
		{name: "credential not ready warns", ns: "web", op: admissionv1.Create, kind: pod, object: podJSON("ghcr.io/acme/app:1"), ready: notReady,
			allowed: true, warnings: 1, message: "no credential published yet"},
		{name: "a projected token for the credential provider", ns: "web", op: admissionv1.Create, kind: pod,
			object:  `{"spec":{"containers":[{"image":"ghcr.io/acme/app:1"}],"volumes":[{"name":"t","projected":{"sources":[{"serviceAccountToken":{"audience":"credbroker","path":"t"}}]}}]}}`,
			message: "may not mount a ServiceAccount token"},
		{name: "a projected token for another audience", ns: "web", op: admissionv1.Create, kind: pod,
			object:  `{"spec":{"containers":[{"image":"ghcr.io/acme/app:1"}],"volumes":[{"name":"t","projected":{"sources":[{"serviceAccountToken":{"audience":"vault","path":"t"}}]}}]}}`,
			allowed: true},
		{name: "garbage object", ns: "web", op: admissionv1.Create, kind: pod, object: `{"spec":{"containers":"nope"}}`, httpError: http.StatusBadRequest},
		{name: "a namespace admin's TokenRequest for the credential provider", ns: "web", op: admissionv1.Create, kind: tokenRequest, sub: "token",
			object: tokenRequestJSON("credbroker"), user: "alice", groups: []string{"system:authenticated"}, message: "only a node may request"},
		{name: "a node's TokenRequest for the credential provider", ns: "web", op: admissionv1.Create, kind: tokenRequest, sub: "token",
			object: tokenRequestJSON("credbroker"), user: "system:node:node-a", groups: []string{"system:nodes", "system:authenticated"}, allowed: true},
		{name: "a node's name without the nodes' group", ns: "web", op: admissionv1.Create, kind: tokenRequest, sub: "token",
			object: tokenRequestJSON("credbroker"), user: "system:node:node-a", message: "only a node may request"},
		{name: "a cluster-admin's TokenRequest for the credential provider", ns: "web", op: admissionv1.Create, kind: tokenRequest, sub: "token",
			object: tokenRequestJSON("credbroker"), user: "root", groups: []string{"system:masters"}, allowed: true},
		{name: "a TokenRequest for another audience", ns: "web", op: admissionv1.Create, kind: tokenRequest, sub: "token",
			object: tokenRequestJSON("vault", "credbroker-registry"), user: "alice", allowed: true},
		{name: "a TokenRequest in an unbound namespace", ns: "other", op: admissionv1.Create, kind: tokenRequest, sub: "token",
			object: tokenRequestJSON("credbroker"), user: "alice", allowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewReviewer(owners{}, ReviewerConfig{Readiness: readiness{tc.ready}, ProviderAudience: ProviderAudience, Images: broker.ImageRules{Public: []string{"docker.io/istio"},
				InCluster: broker.InClusterRegistry{Host: "registry.cluster.internal:5000", NamespacePrefix: "cluster.local/{namespace}/", PublicPrefixes: []string{"platform/"}}}}, slog.New(slog.DiscardHandler))
			review := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
				Request: &admissionv1.AdmissionRequest{UID: types.UID("uid-1"), Kind: tc.kind, Namespace: tc.ns, Operation: tc.op, SubResource: tc.sub,
					Object: runtime.RawExtension{Raw: []byte(tc.object)}, UserInfo: authenticationv1.UserInfo{Username: tc.user, Groups: tc.groups}}}
			if tc.kind == tokenRequest {
				review.Request.Resource = metav1.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
			}
			if tc.old != "" {
				review.Request.OldObject = runtime.RawExtension{Raw: []byte(tc.old)}
			}
			resp := post(t, h, review)
			if tc.httpError != 0 {
				if resp.Code != tc.httpError {
					t.Fatalf("status %d, want %d", resp.Code, tc.httpError)
				}
				return
			}
			var got admissionv1.AdmissionReview
			if err := json.Unmarshal(resp.Body.Bytes(), &got); err != nil || got.Response == nil {
				t.Fatalf("answer %d %s: %v", resp.Code, resp.Body, err)
			}
			r := got.Response
			if r.UID != "uid-1" || r.Allowed != tc.allowed || len(r.Warnings) != tc.warnings {
				t.Fatalf("answer %+v, want allowed %v with %d warnings", r, tc.allowed, tc.warnings)
			}
			text := strings.Join(r.Warnings, " ")
			if r.Result != nil {
				text = r.Result.Message
				if r.Result.Code != http.StatusForbidden {
					t.Errorf("refused with code %d", r.Result.Code)
				}
			}
			if !strings.Contains(text, tc.message) {
				t.Errorf("message %q lacks %q", text, tc.message)
			}
		})
	}
}

func TestWebhookAsksForTheFailurePolicyWhenItCannotTell(t *testing.T) {
	h := NewReviewer(owners{err: fmt.Errorf("%w: tenants not loaded", broker.ErrUnavailable)}, ReviewerConfig{ProviderAudience: ProviderAudience}, slog.New(slog.DiscardHandler))
	review := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: "web",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(podJSON("ghcr.io/acme/app:1"))}}}
	if resp := post(t, h, review); resp.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 (the API server applies failurePolicy)", resp.Code)
	}
	review.APIVersion = "admission.k8s.io/v1beta1"
	if resp := post(t, h, review); resp.Code != http.StatusBadRequest {
		t.Errorf("a v1beta1 review: status %d, want 400", resp.Code)
	}
}

func post(t *testing.T, h http.Handler, review admissionv1.AdmissionReview) *httptest.ResponseRecorder {
	t.Helper()
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body)))
	return rec
}
