// Package admission enforces image ownership where Pods are admitted.
//
// Three ValidatingAdmissionPolicies the API server evaluates on its own,
// embedded as shipped (the Helm chart carries copies a test keeps equal):
// Policy (policy.yaml) judges a Pod's images by the namespace marks k8ssync
// writes and refuses projected tokens for the credential provider's
// audience; Guard (guard.yaml) keeps those marks credbroker's and the
// selector labels the platform's; Tokens (tokens.yaml) lets only nodes
// request tokens for the provider's audience in bound namespaces. Bindings
// binds the first and the last per Mode (enforce or dry run), the guard
// always to deny.
//
// Reviewer answers the AdmissionReviews of a validating webhook with the
// same rules, for clusters without ValidatingAdmissionPolicy and for what
// CEL cannot know, such as whether the tenant's credential is ready.
package admission
