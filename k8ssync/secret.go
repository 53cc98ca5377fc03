package k8ssync

import (
	"bytes"
	"crypto/sha256"
	"maps"
	"time"

	"github.com/credbroker/credbroker/broker"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations on the Secrets credbroker manages.
const (
	LabelManagedBy        = "app.kubernetes.io/managed-by"
	ManagedByValue        = "credbroker"
	LabelTenant           = "credbroker.io/tenant"
	AnnotationExpiry      = "credbroker.io/credential-expiry"
	AnnotationFingerprint = "credbroker.io/credential-fingerprint"
	AnnotationSyncTime    = "credbroker.io/last-sync"
)

// managedSelector selects the pull Secrets credbroker manages: managed-by
// and a tenant label. (The tenant Store's Secrets carry managed-by without
// the tenant label, so the Syncer never sees them.)
const managedSelector = LabelManagedBy + "=" + ManagedByValue + "," + LabelTenant

// digestSecretData is the Secret informer's transform: the cache keeps the
// SHA-256 of each value instead of the value. The Syncer only compares what
// a namespace holds with what it should hold, and a digest tells a
// hand-edited credential apart as well as the credential does; at 10,000
// namespaces the cached credentials were a tenth of the broker's heap.
func digestSecretData(obj any) (any, error) {
	obj, err := dropManagedFields(obj)
	if sec, ok := obj.(*corev1.Secret); ok && err == nil {
		for k, v := range sec.Data {
			sum := sha256.Sum256(v)
			sec.Data[k] = sum[:]
		}
	}
	return obj, err
}

// sameDigest reports whether cached (a digest, see digestSecretData) is the
// digest of value.
func sameDigest(cached, value []byte) bool {
	sum := sha256.Sum256(value)
	return bytes.Equal(cached, sum[:])
}

// desiredSecret is the Secret a namespace of b's should hold: b's payload,
// and the namespace's robot beside it when there is one. It is the one
// place a payload is rendered.
func desiredSecret(namespace string, b *binding, robot []broker.RegistryAuth) *corev1.Secret {
	cred := b.payload.Credential
	annotations := map[string]string{AnnotationFingerprint: cred.Fingerprint()}
	if !cred.ExpiresAt.IsZero() {
		annotations[AnnotationExpiry] = cred.ExpiresAt.UTC().Format(time.RFC3339)
	}
	sec := secretOf(namespace, b)
	sec.Labels = map[string]string{LabelManagedBy: ManagedByValue, LabelTenant: b.tenant.ID}
	sec.Annotations = annotations
	sec.Type = corev1.SecretTypeDockerConfigJson
	sec.Data = map[string][]byte{corev1.DockerConfigJsonKey: b.payload.DockerConfigJSON(robot...)}
	return sec
}

// secretOf names b's Secret in namespace, for the Events about it (which
// land in the namespace of the object they are about, existing or not).
func secretOf(namespace string, b *binding) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: b.tenant.SecretName, Namespace: namespace}}
}

// upToDate reports whether actual holds what desired asks for. Only our keys
// count: labels and annotations others add are left alone, and the sync-time
// annotation does not make a Secret stale.
func upToDate(actual, desired *corev1.Secret) bool {
	if actual.Type != desired.Type || !maps.EqualFunc(actual.Data, desired.Data, sameDigest) {
		return false
	}
	for k, v := range desired.Labels {
		if actual.Labels[k] != v {
			return false
		}
	}
	for _, k := range []string{AnnotationFingerprint, AnnotationExpiry} {
		if actual.Annotations[k] != desired.Annotations[k] {
			return false
		}
	}
	return true
}

// isManaged reports whether a Secret is a pull Secret credbroker owns.
func isManaged(s *corev1.Secret) bool {
	_, hasTenant := s.Labels[LabelTenant]
	return s.Labels[LabelManagedBy] == ManagedByValue && hasTenant
}
