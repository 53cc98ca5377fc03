package admission

import (
	_ "embed"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The namespace marks the policy reads. k8ssync writes them.
const (
	// LabelTenant names the tenant a namespace is bound to; the policy
	// matches only namespaces that carry it.
	LabelTenant = "credbroker.io/tenant"
	// AnnotationImageScopes holds broker.Tenant.ImageScopes, space-separated.
	AnnotationImageScopes = "credbroker.io/image-scopes"
)

// PolicyName names both the policy and its binding.
const PolicyName = "credbroker-image-ownership"

// PolicyYAML is the policy as shipped; the Helm chart carries a copy
// (charts/credbroker/files/admission-policy.yaml, kept equal by a test).
//
//go:embed policy.yaml
var PolicyYAML []byte

// Policy returns the ValidatingAdmissionPolicy.
func Policy() (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	var p admissionregistrationv1.ValidatingAdmissionPolicy
	if err := yaml.UnmarshalStrict(PolicyYAML, &p); err != nil {
		return nil, fmt.Errorf("decode the admission policy: %w", err)
	}
	p.APIVersion, p.Kind = admissionregistrationv1.SchemeGroupVersion.String(), "ValidatingAdmissionPolicy"
	return &p, nil
}

// Mode is what the API server does with the policy's verdict.
type Mode string

// Modes.
const (
	// Enforce denies the request.
	Enforce Mode = "enforce"
	// DryRun lets the request through with a warning to the client and an
	// annotation on its audit event.
	DryRun Mode = "dry-run"
)

// Actions returns the binding's validationActions for m.
func (m Mode) Actions() ([]admissionregistrationv1.ValidationAction, error) {
	switch m {
	case Enforce:
		return []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}, nil
	case DryRun:
		return []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn, admissionregistrationv1.Audit}, nil
	}
	return nil, fmt.Errorf("admission policy mode %q: want %s or %s", m, Enforce, DryRun)
}

// Binding returns the policy's binding in mode m, for every namespace bound
// to a tenant.
func Binding(m Mode) (*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	actions, err := m.Actions()
	if err != nil {
		return nil, err
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName, Labels: map[string]string{"app.kubernetes.io/name": "credbroker"}},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        PolicyName,
			ValidationActions: actions,
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelTenant, Operator: metav1.LabelSelectorOpExists}},
			}},
		},
	}, nil
}
