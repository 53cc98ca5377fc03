package k8ssync

import (
	"crypto/sha256"

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

// secretOf names b's Secret in namespace, for the Events about it (which
// land in the namespace of the object they are about, existing or not).
func secretOf(namespace string, b *binding) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: b.tenant.SecretName, Namespace: namespace}}
}

// isManaged reports whether a Secret is a pull Secret credbroker owns.
func isManaged(s *corev1.Secret) bool {
	_, hasTenant := s.Labels[LabelTenant]
	return s.Labels[LabelManagedBy] == ManagedByValue && hasTenant
}
