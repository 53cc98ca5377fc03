package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TokenFormat is the shape of the installation tokens the emulator mints.
type TokenFormat string

// Token formats. GitHub began rolling out stateless installation tokens on
// 2026-04-27: "ghs_<app id>_<JWT>", about 520 characters and varying with
// what the JWT carries (permissions, repositories), in the alphabet
// [A-Za-z0-9._-]. The stateful ones before them are "ghs_" and 36
// alphanumerics. GitHub's own pattern for both is ghs_[A-Za-z0-9._-]{36,}.
const (
	TokenFormatStateless TokenFormat = "stateless"
	TokenFormatStateful  TokenFormat = "stateful"
)

// StatelessTokenHeader is the request header GitHub takes on POST
// /app/installations/{id}/access_tokens to override its rollout for one
// request: "enabled" mints a stateless token, "disabled" a stateful one,
// and any other value is ignored (the rollout decides).
const StatelessTokenHeader = "X-GitHub-Stateless-S2S-Token"

// SetTokenFormat sets the shape of minted installation tokens when the
// request does not override it with StatelessTokenHeader: GitHub's rollout
// decision for this App. TokenFormatStateless is the default.
func (s *Server) SetTokenFormat(f TokenFormat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFormat = f
}

// tokenFormatFor is the format of one mint: the request's override, or
// the emulator's rollout decision. Must be called with s.mu held.
func (s *Server) tokenFormatFor(header string) TokenFormat {
	switch header {
	case "enabled":
		return TokenFormatStateless
	case "disabled":
		return TokenFormatStateful
	}
	return s.tokenFormat
}

// isStateless reports a token of the stateless shape: ghs_<digits>_ and a
// JWT's three parts.
func isStateless(token string) bool {
	appID, jwt, ok := strings.Cut(strings.TrimPrefix(token, "ghs_"), "_")
	return ok && strings.HasPrefix(token, "ghs_") && appID != "" && strings.Trim(appID, "0123456789") == "" && strings.Count(jwt, ".") == 2
}

const alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// statefulToken is the classic opaque installation token: "ghs_" and 36
// alphanumerics.
func statefulToken() string {
	b := make([]byte, 36)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphanumerics[int(b[i])%len(alphanumerics)]
	}
	return "ghs_" + string(b)
}

// statelessToken is a stateless installation token: "ghs_<app id>_" and a
// JWT (base64url, so '-' and '_' occur, and '.' between its parts) whose
// claims say what GitHub says they hold (installation, App, permissions,
// repositories, validity). GitHub signs it with an internal key clients
// must not verify or read; the emulator signs nothing and never parses it:
// it looks tokens up as it does stateful ones. The length varies with the
// claims, around 520 characters for a packages:read token.
func statelessToken(appID, installationID int64, perms map[string]string, repos []string, iat, exp time.Time) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "s2s-" + strconv.FormatInt(iat.Unix()/86400, 36)})
	jti := make([]byte, 18)
	_, _ = rand.Read(jti)
	ids := make([]int64, 0, len(repos))
	for _, r := range repos {
		ids = append(ids, RepositoryID(r))
	}
	slices.Sort(ids)
	claims, _ := json.Marshal(map[string]any{
		"iss":             "github.com",
		"aud":             "api.github.com",
		"sub":             fmt.Sprintf("installation:%d", installationID),
		"app_id":          appID,
		"installation_id": installationID,
		"permissions":     maps.Clone(perms),
		"repository_ids":  ids,
		"iat":             iat.Unix(),
		"exp":             exp.Unix(),
		"jti":             enc.EncodeToString(jti),
	})
	sig := make([]byte, 64) // an ES256 signature's size
	_, _ = rand.Read(sig)
	return fmt.Sprintf("ghs_%d_%s.%s.%s", appID, enc.EncodeToString(header), enc.EncodeToString(claims), enc.EncodeToString(sig))
}
