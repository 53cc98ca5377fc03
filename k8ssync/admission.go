package k8ssync

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/admission"
)

// ApplyAdmissionPolicy makes the cluster hold credbroker's image ownership
// policy and its binding in mode m (server-side apply, so that a later
// start with another mode or a newer policy takes over the fields). The
// Helm chart ships both itself; this is for clusters set up without it,
// and needs the right to write the two objects.
func ApplyAdmissionPolicy(ctx context.Context, client kubernetes.Interface, m admission.Mode) error {
	policy, err := admission.Policy()
	if err != nil {
		return err
	}
	binding, err := admission.Binding(m)
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: Component, Force: &force}
	api := client.AdmissionregistrationV1()
	body, err := json.Marshal(policy)
	if err != nil {
		return err
	}
	if _, err := api.ValidatingAdmissionPolicies().Patch(ctx, policy.Name, types.ApplyPatchType, body, opts); err != nil {
		return fmt.Errorf("apply ValidatingAdmissionPolicy %s: %w", policy.Name, err)
	}
	if body, err = json.Marshal(binding); err != nil {
		return err
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Patch(ctx, binding.Name, types.ApplyPatchType, body, opts); err != nil {
		return fmt.Errorf("apply ValidatingAdmissionPolicyBinding %s: %w", binding.Name, err)
	}
	return nil
}
