// Package admission enforces image ownership where Pods are admitted: the
// ValidatingAdmissionPolicy the API server evaluates on its own (the
// mapping it reads is written by k8ssync), and a validating webhook for
// clusters without it and for what CEL cannot know, such as whether the
// tenant's credential is ready.
package admission
