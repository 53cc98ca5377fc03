package broker

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of the AES-256 key that seals PATs at rest.
const KeySize = 32

// sealedV1 prefixes every sealed value, so that a later key or algorithm
// change can tell old values from new ones.
const sealedV1 byte = 1

// Sealer encrypts secrets at rest with AES-256-GCM. The tenant id is bound
// as additional data, so a sealed PAT copied onto another tenant does not open.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key has %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// ParseKey reads a key as written in a key file or environment variable:
// 32 raw bytes, or their standard base64 encoding (surrounding space ignored).
func ParseKey(data []byte) ([]byte, error) {
	if len(data) == KeySize {
		return data, nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != KeySize {
		return nil, errors.New("encryption key must be 32 bytes, raw or base64-encoded (try: head -c 32 /dev/urandom | base64)")
	}
	return key, nil
}

// Seal encrypts plaintext for the tenant with the given id.
func (s *Sealer) Seal(tenantID, plaintext string) ([]byte, error) {
	return s.SealAs(additionalData(tenantID), plaintext)
}

// SealAs encrypts plaintext bound to ad, which names what the value is and
// whose: it opens only with the same ad, so a sealed value copied to
// another record does not open there.
func (s *Sealer) SealAs(ad []byte, plaintext string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := append([]byte{sealedV1}, nonce...)
	return s.aead.Seal(out, nonce, []byte(plaintext), ad), nil
}

// ErrUnseal means a sealed value does not open with the configured key: the
// key is wrong, or the value was tampered with or moved to another tenant.
var ErrUnseal = errors.New("sealed secret does not decrypt with the configured key")

// Open decrypts a value sealed for the tenant with the given id.
func (s *Sealer) Open(tenantID string, sealed []byte) (string, error) {
	return s.OpenAs(additionalData(tenantID), sealed)
}

// OpenAs decrypts a value sealed with SealAs under the same ad.
func (s *Sealer) OpenAs(ad, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealedV1 {
		return "", ErrUnseal
	}
	plaintext, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], ad)
	if err != nil {
		return "", ErrUnseal
	}
	return string(plaintext), nil
}

func additionalData(tenantID string) []byte { return []byte("credbroker/tenants/" + tenantID + "/pat") }
