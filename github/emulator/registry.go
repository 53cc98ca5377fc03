package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// RegistryIssuer is the iss of the registry tokens the emulator signs; a
// real registry that trusts the emulator's realm is configured with it.
const RegistryIssuer = "emulator"

const registryTokenLifetime = 5 * time.Minute

// anonymous is the subject of the realm's tokens for a client that did not
// log in.
const anonymous = "anonymous"

// registry is the emulator's ghcr.io: the token realm and, until
// RunDistribution puts a real registry behind it, enough of /v2/ to answer a
// pull's manifest request.
type registry struct {
	key             *ecdsa.PrivateKey
	certDER         []byte
	acceptAppTokens bool
	manifests       map[string][]byte // repository → manifest
}

func newRegistry() *registry {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("emulator: registry signing key: %v", err))
	}
	// The certificate's validity uses real time: a real registry verifies it
	// against its own clock, whatever the emulator's clock says.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "emulator registry token signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(fmt.Sprintf("emulator: registry certificate: %v", err))
	}
	return &registry{key: key, certDER: der, manifests: map[string][]byte{}}
}

// RegistryHost is the registry's host:port, as it appears in image references.
func (s *Server) RegistryHost() string { return strings.TrimPrefix(s.Registry.URL, "http://") }

// RegistryService is the service name in the registry's challenge and in the
// aud of its tokens.
func (s *Server) RegistryService() string { return s.RegistryHost() }

// RegistryRealm is the token endpoint URL.
func (s *Server) RegistryRealm() string { return s.Registry.URL + "/token" }

// RegistryCertPEM is the certificate of the key that signs registry tokens:
// a real registry's auth.token.rootcertbundle.
func (s *Server) RegistryCertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.registry.certDER})
}

// AcceptAppTokens decides whether App installation tokens may pull. GitHub's
// registry lets them log in but denies private pulls, which is the default.
func (s *Server) AcceptAppTokens(accept bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registry.acceptAppTokens = accept
}

// AddImage publishes a (tiny) image at repository:tag, for example
// AddImage("acme/app", "latest"), and returns its digest.
func (s *Server) AddImage(repository, tag string) string {
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%x","size":2},"layers":[]}`,
		sha256.Sum256([]byte("{}")))
	return s.addManifest(repository, tag, manifest)
}

// AddMultiArchImage stores a multi-platform image: an OCI index over one
// image manifest, under tag. Like ghcr.io, the registry answers a request
// for it 404 unless its Accept names an index type.
func (s *Server) AddMultiArchImage(repository, tag string) string {
	platform := s.AddImage(repository, tag+"-amd64")
	index := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1,"platform":{"architecture":"amd64","os":"linux"}}]}`,
		ociIndex, platform)
	return s.addManifest(repository, tag, index)
}

const ociIndex = "application/vnd.oci.image.index.v1+json"

func (s *Server) addManifest(repository, tag string, manifest []byte) string {
	sum := sha256.Sum256(manifest)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registry.manifests[repository+":"+tag] = manifest
	s.registry.manifests[repository+"@"+digest] = manifest
	return digest
}

func (s *Server) registryHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", s.registryToken)
	mux.HandleFunc("POST /token", s.refuseTokenPOST)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		if up := s.upstream.Load(); up != nil {
			up.ServeHTTP(w, r)
			return
		}
		s.registryV2(w, r)
	})
	return mux
}

// deniedPull is ghcr.io's answer to a logged-in pull whose token grants no
// access to the repository: 403 DENIED "denied" (docker shows "denied:
// denied", containerd "403 Forbidden"), where CNCF Distribution answers 401
// with error="insufficient_scope". An anonymous pull of a private image
// gets 401 on ghcr.io as on Distribution (docker shows "unauthorized").
func deniedPull(w http.ResponseWriter) {
	registryError(w, http.StatusForbidden, "DENIED", "denied")
}

func registryError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}

// refuseTokenPOST is ghcr.io's answer to the OAuth2 password grant that
// containerd tries first: ghcr.io's /token answers GET only, and a POST
// gets 405 Method Not Allowed, on which containerd asks again with GET
// (it falls back on 405, 404, 401 and 400, never on 403). ghcr.io's exact
// headers and body for it are not documented (docs/github.md); clients
// act on the status alone, and the emulator sends the Allow header HTTP
// requires with a 405. Each POST is counted (RouteRegistryTokenPOST), so a
// test sees the fallback happen.
func (s *Server) refuseTokenPOST(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls[RouteRegistryTokenPOST]++
	s.logTokenRequest(TokenRequest{Method: r.Method, Status: http.StatusMethodNotAllowed, UserAgent: r.UserAgent()})
	s.mu.Unlock()
	w.Header().Set("Allow", "GET")
	registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
}

// registryToken is the realm: Basic auth with a PAT or installation
// token (or none, anonymously), answered with a signed token granting what
// that credential may do. An
// unknown, revoked or expired credential is refused as ghcr.io refuses it:
// 403 {"errors":[{"code":"DENIED","message":"denied"}]} (docker shows
// "denied: denied"); a known one that may not pull gets a token without
// access, which the registry then refuses — the "logs in but is denied" of
// App tokens on ghcr.io.
func (s *Server) registryToken(w http.ResponseWriter, r *http.Request) {
	_, password, hasAuth := r.BasicAuth()
	params := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[RouteRegistryToken]++
	var cred credential
	if hasAuth {
		var msg string
		if cred, msg = s.authenticate(password); msg != "" {
			s.logTokenRequest(TokenRequest{Method: r.Method, Status: http.StatusForbidden, UserAgent: r.UserAgent(), Login: "refused"})
			registryError(w, http.StatusForbidden, "DENIED", "denied")
			return
		}
	}
	access := []map[string]any{}
	for _, scope := range params["scope"] {
		for sc := range strings.FieldsSeq(scope) {
			first, last := strings.Index(sc, ":"), strings.LastIndex(sc, ":")
			if first < 0 || first == last || sc[:first] != "repository" {
				continue
			}
			name, wanted := sc[first+1:last], strings.Split(sc[last+1:], ",")
			var granted []string
			for _, action := range s.allowedActions(cred, name) {
				if slices.Contains(wanted, action) || slices.Contains(wanted, "*") {
					granted = append(granted, action)
				}
			}
			if len(granted) > 0 {
				access = append(access, map[string]any{"type": "repository", "name": name, "actions": granted})
			}
		}
	}
	now := s.clock.Now()
	subject := anonymous
	logged := TokenRequest{Method: r.Method, Status: http.StatusOK, UserAgent: r.UserAgent()}
	switch {
	case cred.pat != nil:
		subject, logged.Login = cred.pat.Owner.Login, "pat"
	case cred.app != nil:
		subject, logged.Login = "x-access-token", "installation"
		logged.Stateless = isStateless(password)
	}
	s.logTokenRequest(logged)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss":    RegistryIssuer,
		"sub":    subject,
		"aud":    params.Get("service"),
		"iat":    now.Unix(),
		"nbf":    now.Add(-time.Second).Unix(),
		"exp":    now.Add(registryTokenLifetime).Unix(),
		"jti":    randomToken(""),
		"access": access,
	})
	tok.Header["x5c"] = []string{base64.StdEncoding.EncodeToString(s.registry.certDER)}
	signed, err := tok.SignedString(s.registry.key)
	if err != nil {
		registryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token": signed, "access_token": signed,
		"expires_in": int(registryTokenLifetime.Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
	})
}

// allowedActions is what a credential may do on a repository: a PAT with a
// packages scope reads its user's and its orgs' packages (and writes with
// write:packages); an App token reads its installation's packages only if
// the registry accepts App tokens. Must be called with s.mu held.
func (s *Server) allowedActions(cred credential, repository string) []string {
	owner, _, _ := strings.Cut(repository, "/")
	switch {
	case cred.pat != nil:
		p := cred.pat
		if !strings.EqualFold(owner, p.Owner.Login) && !slices.ContainsFunc(p.Orgs, func(o string) bool { return strings.EqualFold(o, owner) }) {
			return nil
		}
		var actions []string
		if slices.ContainsFunc(p.Scopes, func(s string) bool { return strings.HasSuffix(s, ":packages") }) {
			actions = append(actions, "pull")
		}
		if slices.Contains(p.Scopes, "write:packages") {
			actions = append(actions, "push")
		}
		return actions
	case cred.app != nil:
		in := s.installations[cred.app.installationID]
		if s.registry.acceptAppTokens && levels[cred.app.permissions["packages"]] >= levels["read"] &&
			strings.EqualFold(owner, in.Account.Login) {
			return []string{"pull"}
		}
	}
	return nil
}

// registryV2 answers GET /v2/ with the challenge and HEAD/GET of manifests
// for holders of a token that grants the pull.
func (s *Server) registryV2(w http.ResponseWriter, r *http.Request) {
	challenge := fmt.Sprintf(`Bearer realm=%q,service=%q`, s.RegistryRealm(), s.RegistryService())
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	name, ref, ok := strings.Cut(rest, "/manifests/")
	if rest == "" || !ok || (r.Method != http.MethodHead && r.Method != http.MethodGet) {
		if rest == "" && s.validRegistryToken(r, "") {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("WWW-Authenticate", challenge)
		registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	s.mu.Lock()
	s.calls[RouteManifest]++
	s.mu.Unlock()
	if !s.validRegistryToken(r, name) {
		if s.loggedIn(r) {
			deniedPull(w)
			return
		}
		challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, name)
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			challenge += `,error="insufficient_scope"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	s.mu.Lock()
	manifest, found := s.registry.manifests[name+sep+ref]
	s.mu.Unlock()
	if !found {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
		return
	}
	var head struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(manifest, &head)
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if head.MediaType == ociIndex && !strings.Contains(accept, ociIndex) && !strings.Contains(accept, "manifest.list.v2+json") {
		// ghcr.io's answer to a client that cannot take an index.
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
		return
	}
	sum := sha256.Sum256(manifest)
	w.Header().Set("Content-Type", head.MediaType)
	w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
	w.Header().Set("Content-Length", fmt.Sprint(len(manifest)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(manifest)
	}
}

// registryClaims are the claims of the request's bearer token if the realm
// issued it and it is still good.
func (s *Server) registryClaims(r *http.Request) (jwt.MapClaims, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	now := s.clock.Now()
	s.mu.Unlock()
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &s.registry.key.PublicKey, nil })
	if err != nil || !claims.VerifyExpiresAt(now.Unix(), true) || !claims.VerifyAudience(s.RegistryService(), true) {
		return nil, false
	}
	return claims, true
}

// loggedIn reports whether the request bears a good token of a credential,
// not an anonymous one.
func (s *Server) loggedIn(r *http.Request) bool {
	claims, ok := s.registryClaims(r)
	return ok && claims["sub"] != anonymous
}

// validRegistryToken checks the bearer token the realm issued: signature,
// audience, expiry, and (when repository is set) a pull grant for it.
func (s *Server) validRegistryToken(r *http.Request, repository string) bool {
	claims, ok := s.registryClaims(r)
	if !ok {
		return false
	}
	if repository == "" {
		return true
	}
	var grants struct {
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	data, _ := json.Marshal(claims)
	if json.Unmarshal(data, &grants) != nil {
		return false
	}
	for _, a := range grants.Access {
		if a.Type == "repository" && a.Name == repository && slices.Contains(a.Actions, "pull") {
			return true
		}
	}
	return false
}

// TokenRequest is one request to the realm, as TokenRequests lists it.
type TokenRequest struct {
	Method    string `json:"method"`
	Status    int    `json:"status"`
	UserAgent string `json:"userAgent"`
	// Login is what logged in: "pat", "installation" (a token of an App
	// installation), "refused" (403), or "" (anonymous, or a POST).
	Login string `json:"login,omitempty"`
	// Stateless reports an installation token of GitHub's stateless shape.
	Stateless bool `json:"stateless,omitempty"`
}

// maxTokenRequests bounds the realm's request log: the newest are kept.
const maxTokenRequests = 1000

// logTokenRequest keeps one realm request. Must be called with s.mu held.
func (s *Server) logTokenRequest(tr TokenRequest) {
	if len(s.tokenRequests) == maxTokenRequests {
		s.tokenRequests = s.tokenRequests[1:]
	}
	s.tokenRequests = append(s.tokenRequests, tr)
}

// TokenRequests lists the realm's requests in order (the newest 1,000), so
// a test sees how a client logged in: containerd's POST refused 405 and its
// GET that followed, and with which kind of token.
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenRequests)
}
