package k8ssync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/broker"
)

// Credentials live beside the tenants in credbroker's own namespace, sealed,
// so that a new leader publishes the credentials the last one obtained.
const (
	credentialSecretPrefix = "credbroker-credential-"
	credentialSecretType   = corev1.SecretType("credbroker.io/credential")
	labelCredential        = "credbroker.io/credential"
	annotationKey          = "credbroker.io/credential-key"
	sealedKey              = "sealed"
)

// credentialSecretName derives a valid object name from a credential key,
// which holds characters names may not.
func credentialSecretName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return credentialSecretPrefix + hex.EncodeToString(sum[:12])
}

// GetCredential implements broker.CredentialStore.
func (s *Store) GetCredential(ctx context.Context, key string) ([]byte, error) {
	sec, err := s.secrets().Get(ctx, credentialSecretName(key), metav1.GetOptions{})
	if err != nil {
		return nil, storeError(err)
	}
	if sec.Annotations[annotationKey] != key { // a hash collision, in theory
		return nil, broker.ErrNotFound
	}
	return sec.Data[sealedKey], nil
}

// PutCredential implements broker.CredentialStore.
func (s *Store) PutCredential(ctx context.Context, key string, sealed []byte) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        credentialSecretName(key),
			Namespace:   s.namespace,
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, labelCredential: ""},
			Annotations: map[string]string{annotationKey: key},
		},
		Type: credentialSecretType,
		Data: map[string][]byte{sealedKey: sealed},
	}
	_, err := s.secrets().Update(ctx, sec, metav1.UpdateOptions{FieldManager: Component})
	if apierrors.IsNotFound(err) {
		_, err = s.secrets().Create(ctx, sec, metav1.CreateOptions{FieldManager: Component})
	}
	if err != nil {
		return fmt.Errorf("store credential: %w", storeError(err))
	}
	return nil
}

// DeleteCredential implements broker.CredentialStore.
func (s *Store) DeleteCredential(ctx context.Context, key string) error {
	return storeError(s.secrets().Delete(ctx, credentialSecretName(key), metav1.DeleteOptions{}))
}
