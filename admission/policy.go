package admission

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"

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

// The policies' names; each binding has its policy's name.
const (
	PolicyName = "credbroker-image-ownership"
	GuardName  = "credbroker-namespace-marks"
)

// GuardUser is the user guard.yaml exempts, which Guard replaces with
// credbroker's own identity.
const GuardUser = "system:serviceaccount:credbroker:credbroker"

// The policies as shipped; the Helm chart carries copies in
// charts/credbroker/files, kept equal by a test.
var (
	//go:embed policy.yaml
	PolicyYAML []byte
	//go:embed guard.yaml
	GuardYAML []byte
)

// ProviderAudience is the credential provider's audience policy.yaml
// names, which Policy replaces.
const ProviderAudience = "credbroker"

// providerAudienceTest is how policy.yaml compares a projected token's
// audience with ProviderAudience.
const providerAudienceTest = ".?audience.orValue('') == '%s'"

// Policy returns the image ownership policy, refusing projected tokens for
// audience (the credential provider's, --provider-audience).
func Policy(audience string) (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	if err := literal("the credential provider's audience", audience); err != nil {
		return nil, err
	}
	return decode(bytes.ReplaceAll(PolicyYAML, fmt.Appendf(nil, providerAudienceTest, ProviderAudience), fmt.Appendf(nil, providerAudienceTest, audience)))
}

// literal refuses a value that could not stand in a CEL string literal as
// it is.
func literal(what, v string) error {
	if v == "" || strings.ContainsAny(v, "'\\\n") {
		return fmt.Errorf("admission policy: %q cannot be %s", v, what)
	}
	return nil
}

func decode(doc []byte) (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	var p admissionregistrationv1.ValidatingAdmissionPolicy
	if err := yaml.UnmarshalStrict(doc, &p); err != nil {
		return nil, fmt.Errorf("decode an admission policy: %w", err)
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

// Bindings returns the bindings of the policies: the image ownership
// policy's and the provider tokens' in mode m, for every namespace bound
// to a tenant, and the guard's, which always denies (nobody but credbroker has a reason to touch
// a mark, in a dry run or not).
func Bindings(m Mode) ([]*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	actions, err := m.Actions()
	if err != nil {
		return nil, err
	}
	binding := func(policy string, actions []admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
		return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: policy, Labels: map[string]string{"app.kubernetes.io/name": "credbroker"}},
			Spec:       admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy, ValidationActions: actions},
		}
	}
	bound := func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
		b.Spec.MatchResources = &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelTenant, Operator: metav1.LabelSelectorOpExists}},
		}}
		return b
	}
	// The provider tokens' policy (tokens.yaml) refuses the same tokens as
	// the image policy's second validation, by another route: same mode.
	return []*admissionregistrationv1.ValidatingAdmissionPolicyBinding{bound(binding(PolicyName, actions)),
		binding(GuardName, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}), bound(binding(TokensName, actions))}, nil
}
