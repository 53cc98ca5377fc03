package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"sigs.k8s.io/yaml"
)

// TokenFile authenticates static bearer tokens listed, hashed, in a file:
//
//	tokens:
//	  - name: platform-backend
//	    sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//	    roles: [admin]
//	    groups: [platform]
//
// The file holds no token, only its SHA-256 (`printf %s "$TOKEN" | sha256sum`).
// It is read again when it changes (checked at most once a second); a file
// that no longer parses is ignored, with a log line, and the last good one
// stays in force.
type TokenFile struct {
	path  string
	log   *slog.Logger
	clock clock.PassiveClock

	mu      sync.Mutex
	entries []tokenEntry
	checked time.Time
	modTime time.Time
	size    int64
}

type tokenEntry struct {
	Name   string   `json:"name"`
	SHA256 string   `json:"sha256"`
	Roles  []string `json:"roles"`
	Groups []string `json:"groups"`
	hash   []byte
}

// NewTokenFile reads path; an unreadable or invalid file is an error here,
// at startup, rather than an API nobody can call.
func NewTokenFile(path string, log *slog.Logger) (*TokenFile, error) {
	f := &TokenFile{path: path, log: log, clock: clock.RealClock{}}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// NewTokens serves a fixed list of tokens (dev mode's generated admin token)
// without a file.
func NewTokens(entries ...StaticToken) *TokenFile {
	f := &TokenFile{clock: clock.RealClock{}}
	for _, e := range entries {
		sum := sha256.Sum256([]byte(e.Token))
		f.entries = append(f.entries, tokenEntry{Name: e.Name, Roles: e.Roles, hash: sum[:]})
	}
	return f
}

// StaticToken is one token of NewTokens.
type StaticToken struct {
	Name  string
	Token string
	Roles []string
}

func (f *TokenFile) load() error {
	info, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	var doc struct {
		Tokens []tokenEntry `json:"tokens"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return fmt.Errorf("token file %s: %w", f.path, err)
	}
	for i := range doc.Tokens {
		e := &doc.Tokens[i]
		hash, err := hex.DecodeString(e.SHA256)
		if e.Name == "" || err != nil || len(hash) != sha256.Size {
			return fmt.Errorf("token file %s: entry %d needs a name and the token's sha256 as 64 hex digits", f.path, i)
		}
		e.hash = hash
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries, f.modTime, f.size = doc.Tokens, info.ModTime(), info.Size()
	return nil
}

// reload reads the file again if it changed, at most once a second.
func (f *TokenFile) reload() {
	if f.path == "" {
		return
	}
	f.mu.Lock()
	now := f.clock.Now()
	if now.Sub(f.checked) < time.Second {
		f.mu.Unlock()
		return
	}
	f.checked = now
	modTime, size := f.modTime, f.size
	f.mu.Unlock()
	info, err := os.Stat(f.path)
	if err == nil && info.ModTime().Equal(modTime) && info.Size() == size {
		return
	}
	if err == nil {
		err = f.load()
	}
	if err != nil && f.log != nil {
		f.log.Error("token file not reloaded; the last good one stays in force", slog.Any("error", err))
	}
}

// Authenticate implements Authenticator. It compares the token's hash with
// every entry in constant time, so timing tells nothing about which entry
// came close.
func (f *TokenFile) Authenticate(_ context.Context, req Request) (Identity, bool, error) {
	if req.BearerToken == "" {
		return Identity{}, false, nil
	}
	f.reload()
	sum := sha256.Sum256([]byte(req.BearerToken))
	f.mu.Lock()
	defer f.mu.Unlock()
	match := -1
	for i, e := range f.entries {
		if subtle.ConstantTimeCompare(sum[:], e.hash) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Identity{}, false, nil
	}
	e := f.entries[match]
	return Identity{Name: e.Name, Groups: e.Groups, Roles: e.Roles, Method: "token-file", TokenHash: tokenPrefix(req.BearerToken)}, true, nil
}
