package k8ssync

import (
	"context"
	"encoding/json"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/admission"
)

// ApplyAdmissionPolicy makes the cluster hold credbroker's admission
// policies and their bindings, the image ownership policy in mode m and
// refusing Pods' own tokens for audience, the credential provider's, and
// TokenRequests for it by anyone but a node, in the same mode
// (server-side apply, so that a later start with another mode or a newer
// policy takes over the fields). The guard lets guard.User, credbroker's
// identity, write the marks, and the platform's identities (guard.Writer*)
// the labels under guard.SelectorPrefix; guard.User "" is whoever client
// authenticates as, which the API server says (SelfSubjectReview). The
// Helm chart ships all six objects itself; this is for clusters set up
// without it, and needs the right to write them.
func ApplyAdmissionPolicy(ctx context.Context, client kubernetes.Interface, m admission.Mode, audience string, guardCfg admission.MarkGuardConfig) error {
	bindings, err := admission.Bindings(m)
	if err != nil {
		return err
	}
	if guardCfg.User == "" {
		self, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("ask the API server who credbroker is: %w", err)
		}
		guardCfg.User = self.Status.UserInfo.Username
	}
	guard, err := admission.Guard(guardCfg)
	if err != nil {
		return err
	}
	policy, err := admission.Policy(audience)
	if err != nil {
		return err
	}
	tokens, err := admission.Tokens(audience)
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: Component, Force: &force}
	api := client.AdmissionregistrationV1()
	for _, p := range []*admissionregistrationv1.ValidatingAdmissionPolicy{policy, guard, tokens} {
		body, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if _, err := api.ValidatingAdmissionPolicies().Patch(ctx, p.Name, types.ApplyPatchType, body, opts); err != nil {
			return fmt.Errorf("apply ValidatingAdmissionPolicy %s: %w", p.Name, err)
		}
	}
	for _, b := range bindings {
		body, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if _, err := api.ValidatingAdmissionPolicyBindings().Patch(ctx, b.Name, types.ApplyPatchType, body, opts); err != nil {
			return fmt.Errorf("apply ValidatingAdmissionPolicyBinding %s: %w", b.Name, err)
		}
	}
	return nil
}
