package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/broker"
)

// WebhookPath is where the Reviewer is served: the path of the validating
// admission webhook's clientConfig.
const WebhookPath = "/admission/validate"

// Readiness says whether a tenant's Pods would get a credential now
// (exchange.Exchanger answers for the tenants the credential provider serves).
type Readiness interface {
	CredentialReady(t broker.Tenant) error
}

// Reviewer answers the AdmissionReviews the API server sends to credbroker's
// validating admission webhook, with the policy's rules, for clusters
// without ValidatingAdmissionPolicy, plus what CEL cannot know: a Pod
// admitted while its tenant's credential is not ready gets a warning,
// before it meets ImagePullBackOff. Every replica serves it from memory.
type Reviewer struct {
	owners broker.NamespaceOwners
	cfg    ReviewerConfig
	log    *slog.Logger
}

// ReviewerConfig is what the Reviewer judges by.
type ReviewerConfig struct {
	// Images has the platform's public scopes, mirrors and in-cluster
	// registry: an image is judged for the request's namespace
	// (broker.ImageRules.ValidateIn), as the policy judges it by the
	// scopes the Syncer writes on that namespace.
	Images broker.ImageRules
	// Readiness, if set, warns of Pods whose credential is not ready.
	Readiness Readiness
	// ProviderAudience is the credential provider's (--provider-audience):
	// Pods of bound namespaces may not mount tokens for it.
	ProviderAudience string
}

// NewReviewer returns a Reviewer.
func NewReviewer(owners broker.NamespaceOwners, cfg ReviewerConfig, log *slog.Logger) *Reviewer {
	return &Reviewer{owners: owners, cfg: cfg, log: log}
}

// ServeHTTP answers an AdmissionReview (admission.k8s.io/v1). A request it
// cannot judge (tenants not loaded yet) gets a 503, and the API server
// applies the webhook's failurePolicy.
func (h *Reviewer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("want an AdmissionReview with a request: %v", err), http.StatusBadRequest)
		return
	}
	if gv := admissionv1.SchemeGroupVersion.String(); review.APIVersion != gv {
		http.Error(w, fmt.Sprintf("AdmissionReview %s: want %s", review.APIVersion, gv), http.StatusBadRequest)
		return
	}
	resp, err := h.review(r.Context(), review.Request)
	if err != nil {
		h.log.WarnContext(r.Context(), "admission review failed", slog.String("namespace", review.Request.Namespace),
			slog.String("kind", review.Request.Kind.Kind), slog.Any("error", err))
		status := http.StatusBadRequest
		if errors.Is(err, broker.ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), status)
		return
	}
	resp.UID = review.Request.UID
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
}

func (h *Reviewer) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Namespace == "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return allow, nil
	}
	if req.Resource.Group == "" && req.Resource.Resource == "serviceaccounts" && req.SubResource == "token" {
		return h.reviewTokenRequest(ctx, req)
	}
	added, judged, err := h.added(req)
	if err != nil || !judged {
		return allow, err
	}
	t, bound, err := h.owners.NamespaceOwner(req.Namespace)
	if err != nil {
		return nil, fmt.Errorf("find the tenant of namespace %s: %w", req.Namespace, err)
	}
	if !bound {
		return allow, nil
	}
	if added.providerToken {
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
			Message: fmt.Sprintf("credbroker: namespace %s belongs to tenant %s: its Pods may not mount a ServiceAccount token for the credential provider's audience; the kubelet asks for that token itself", req.Namespace, t.ID)}}, nil
	}
	images := added.images
	if len(images) == 0 {
		return allow, nil
	}
	var refused []string
	for _, image := range images {
		if v := h.cfg.Images.ValidateIn(t, req.Namespace, image); !v.Allowed {
			refused = append(refused, fmt.Sprintf("image %s (%s): %s", image, v.Reason, v.Message))
		}
	}
	if len(refused) > 0 {
		h.log.InfoContext(ctx, "admission denied", slog.String("tenant", t.ID), slog.String("namespace", req.Namespace),
			slog.String("kind", req.Kind.Kind), slog.String("name", req.Name), slog.String("user", req.UserInfo.Username), slog.Int("refused", len(refused)))
		return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
			Message: fmt.Sprintf("credbroker: namespace %s belongs to tenant %s; refused: %s", req.Namespace, t.ID, strings.Join(refused, "; "))}}, nil
	}
	if h.cfg.Readiness != nil {
		var d *broker.DeniedError
		if err := h.cfg.Readiness.CredentialReady(t); errors.As(err, &d) {
			allow.Warnings = []string{fmt.Sprintf("credbroker: %s: this namespace's pulls will fail until it is (%s)", d.Msg, d.Denial)}
		} else if err != nil {
			return nil, err
		}
	}
	return allow, nil
}

// podSpec is the part of a PodSpec the Reviewer reads.
type podSpec struct {
	Containers          []struct{ Image string } `json:"containers"`
	InitContainers      []struct{ Image string } `json:"initContainers"`
	EphemeralContainers []struct{ Image string } `json:"ephemeralContainers"`
	Volumes             []struct {
		Projected *struct {
			Sources []struct {
				ServiceAccountToken *struct{ Audience string } `json:"serviceAccountToken"`
			} `json:"sources"`
		} `json:"projected"`
	} `json:"volumes"`
}

func (s podSpec) projects(audience string) bool {
	for _, v := range s.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil && src.ServiceAccountToken.Audience == audience {
				return true
			}
		}
	}
	return false
}

func (s podSpec) images() []string {
	var out []string
	for _, list := range [][]struct{ Image string }{s.Containers, s.InitContainers, s.EphemeralContainers} {
		for _, c := range list {
			out = append(out, c.Image)
		}
	}
	return out
}

// workload holds the Pod spec of any kind the policy matches: a Pod's own,
// a controller's template, a CronJob's job template.
type workload struct {
	Spec struct {
		podSpec
		Template struct {
			Spec podSpec `json:"spec"`
		} `json:"template"`
		JobTemplate struct {
			Spec struct {
				Template struct {
					Spec podSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

// judgedKinds are the kinds (group/Kind) the policy matches.
var judgedKinds = map[string]bool{
	"/Pod": true, "apps/Deployment": true, "apps/StatefulSet": true, "apps/DaemonSet": true, "apps/ReplicaSet": true,
	"batch/Job": true, "batch/CronJob": true,
}

// addition is what a request adds that the policy judges: images, and a
// projected token for the credential provider.
type addition struct {
	images        []string
	providerToken bool
}

// added returns what the request's object has that its old object (on
// UPDATE) did not. judged is false for a kind or subresource the policy
// does not match.
func (h *Reviewer) added(req *admissionv1.AdmissionRequest) (a addition, judged bool, err error) {
	if !judgedKinds[req.Kind.Group+"/"+req.Kind.Kind] || (req.SubResource != "" && req.SubResource != "ephemeralcontainers") {
		return a, false, nil
	}
	specOf := func(raw []byte) (podSpec, error) {
		var w workload
		if len(raw) == 0 {
			return podSpec{}, nil
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return podSpec{}, fmt.Errorf("decode the %s: %w", req.Kind.Kind, err)
		}
		switch req.Kind.Kind {
		case "Pod":
			return w.Spec.podSpec, nil
		case "CronJob":
			return w.Spec.JobTemplate.Spec.Template.Spec, nil
		}
		return w.Spec.Template.Spec, nil
	}
	now, err := specOf(req.Object.Raw)
	if err != nil {
		return a, true, err
	}
	old, err := specOf(req.OldObject.Raw)
	if err != nil {
		return a, true, err
	}
	oldImages := old.images()
	a.images = slices.DeleteFunc(now.images(), func(image string) bool { return slices.Contains(oldImages, image) })
	a.providerToken = now.projects(h.cfg.ProviderAudience) && !old.projects(h.cfg.ProviderAudience)
	return a, true, nil
}

// tokenRequest is the part of a TokenRequest the Reviewer reads.
type tokenRequest struct {
	Spec struct {
		Audiences []string `json:"audiences"`
	} `json:"spec"`
}

// reviewTokenRequest judges a TokenRequest as tokens.yaml does: in a
// namespace bound to a tenant, only a node may ask for a token for the
// credential provider's audience.
func (h *Reviewer) reviewTokenRequest(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	var tr tokenRequest
	if err := json.Unmarshal(req.Object.Raw, &tr); err != nil {
		return nil, fmt.Errorf("decode the TokenRequest: %w", err)
	}
	if req.Operation != admissionv1.Create || !slices.Contains(tr.Spec.Audiences, h.cfg.ProviderAudience) || MayRequestProviderTokens(req.UserInfo.Username, req.UserInfo.Groups) {
		return allow, nil
	}
	t, bound, err := h.owners.NamespaceOwner(req.Namespace)
	if err != nil {
		return nil, fmt.Errorf("find the tenant of namespace %s: %w", req.Namespace, err)
	}
	if !bound {
		return allow, nil
	}
	h.log.InfoContext(ctx, "admission denied", slog.String("tenant", t.ID), slog.String("namespace", req.Namespace),
		slog.String("kind", "TokenRequest"), slog.String("serviceAccount", req.Name), slog.String("user", req.UserInfo.Username))
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
		Message: fmt.Sprintf("credbroker: namespace %s belongs to tenant %s: only a node may request a ServiceAccount token for the credential provider's audience; the kubelet asks for it itself (%s is not a node)",
			req.Namespace, t.ID, req.UserInfo.Username)}}, nil
}
