package broker

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestSealerRoundTripAndRefusals(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "ghp_sealMe0123456789"
	sealed, err := s.Seal("acme", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret)) {
		t.Fatal("sealed value contains the plaintext")
	}
	again, _ := s.Seal("acme", secret)
	if bytes.Equal(sealed, again) {
		t.Error("two seals of one secret are identical: the nonce is not random")
	}
	if got, err := s.Open("acme", sealed); err != nil || got != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}

	other, _ := NewSealer(bytes.Repeat([]byte{2}, KeySize))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)/2] ^= 1
	tests := []struct {
		name   string
		sealer *Sealer
		tenant string
		sealed []byte
	}{
		{"wrong key", other, "acme", sealed},
		{"moved to another tenant", s, "evil", sealed},
		{"tampered", s, "acme", tampered},
		{"truncated", s, "acme", sealed[:5]},
		{"empty", s, "acme", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.sealer.Open(tc.tenant, tc.sealed); !errors.Is(err, ErrUnseal) {
				t.Errorf("Open = %v, want ErrUnseal", err)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{9}, KeySize)
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"raw 32 bytes", raw, false},
		{"base64 with newline", []byte(base64.StdEncoding.EncodeToString(raw) + "\n"), false},
		{"too short", []byte("c2hvcnQ="), true},
		{"not base64", []byte(strings.Repeat("!", 40)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseKey(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(key, raw) {
				t.Errorf("key = %x, want %x", key, raw)
			}
		})
	}
}
