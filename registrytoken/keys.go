package registrytoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Keys sign tokens with the first key and publish all of them: to rotate,
// publish the next key beside the current one, let every registry reload
// the JWKS, then make it the first.
type Keys struct {
	signing jose.Signer
	kid     string
	set     jose.JSONWebKeySet
}

// NewKeys takes ECDSA P-256 private keys, the signing one first.
func NewKeys(keys ...*ecdsa.PrivateKey) (*Keys, error) {
	if len(keys) == 0 {
		return nil, errors.New("registry token keys: none given")
	}
	k := &Keys{}
	for i, key := range keys {
		if key.Curve != elliptic.P256() {
			return nil, fmt.Errorf("registry token key %d: want ECDSA P-256 (ES256)", i)
		}
		pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
		thumb, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, err
		}
		pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
		k.set.Keys = append(k.set.Keys, pub)
	}
	k.kid = k.set.Keys[0].KeyID
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: keys[0], KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	k.signing = signer
	return k, nil
}

// ParseKeys reads PEM private keys (PKCS#8 or SEC 1 "EC PRIVATE KEY"),
// the signing one first.
func ParseKeys(pems ...[]byte) (*Keys, error) {
	var keys []*ecdsa.PrivateKey
	for i, data := range pems {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("registry token key %d: no PEM block", i)
		}
		var key any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("registry token key %d: %w", i, err)
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("registry token key %d: a %T, want ECDSA P-256", i, key)
		}
		keys = append(keys, ec)
	}
	return NewKeys(keys...)
}

// GenerateKeys makes one fresh signing key, for dev mode and tests.
func GenerateKeys() (*Keys, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewKeys(key)
}

// JWKS is the public key set a registry trusts (auth.token.jwks).
func (k *Keys) JWKS() jose.JSONWebKeySet { return k.set }
