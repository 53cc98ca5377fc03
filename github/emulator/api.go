package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"hash/fnv"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

type app struct {
	id       int64
	clientID string // "" until SetAppClientID
	key      *rsa.PublicKey
}

// maxJWTAhead is how far ahead of GitHub's clock an App JWT's exp may be
// ("no more than 10 minutes into the future"); its iat may not be in
// GitHub's future at all. GitHub's own example, iat = now − 60 s and
// exp = now + 600 s, passes.
const maxJWTAhead = 10 * time.Minute

// AddApp registers a GitHub App by its id and public key.
func (s *Server) AddApp(appID int64, key *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[appID] = &app{id: appID, key: key}
}

// SetAppClientID gives a registered App its client ID ("Iv23li..."), which
// GitHub accepts as an App JWT's iss in place of the App id (and
// recommends since 2024-05).
func (s *Server) SetAppClientID(appID int64, clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[appID]; ok {
		a.clientID = clientID
	}
}

// issuerMessages are GitHub's 401 messages for an App JWT's iss that names
// no App in a form it takes: absent, or neither a client ID it knows nor an
// integer (observed: a client ID with a stray character). A well-formed
// App id that names no App is 404 "Integration not found".
const (
	issuerMissing    = "Missing 'issuer' claim ('iss') in assertion"
	issuerNotInteger = "'Issuer' claim ('iss') must be an Integer"
)

// appByIssuer finds the App an App JWT's iss names: its App id or its
// client ID, as GitHub takes either. It returns GitHub's status and
// message when none matches. Must be called with s.mu held.
func (s *Server) appByIssuer(iss string) (*app, int, string) {
	if iss == "" {
		return nil, http.StatusUnauthorized, issuerMissing
	}
	for _, a := range s.apps {
		if a.clientID != "" && a.clientID == iss {
			return a, 0, ""
		}
	}
	id, err := strconv.ParseInt(iss, 10, 64)
	if err != nil {
		return nil, http.StatusUnauthorized, issuerNotInteger
	}
	if a, ok := s.apps[id]; ok {
		return a, 0, ""
	}
	return nil, http.StatusNotFound, "Integration not found"
}

// NewAppKey generates an App private key and its PEM (PKCS#1, the form
// GitHub hands out).
func NewAppKey() (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), nil
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(RouteGetInstallation, s.api(RouteGetInstallation, s.getInstallation))
	mux.HandleFunc(RouteMintToken, s.api(RouteMintToken, s.mintToken))
	mux.HandleFunc(RouteRevokeToken, s.api(RouteRevokeToken, s.revokeToken))
	mux.HandleFunc(RouteUser, s.api(RouteUser, s.user))
	mux.HandleFunc(RouteInstallationRepositories, s.api(RouteInstallationRepositories, s.installationRepositories))
	mux.Handle(ControlPrefix, s.controlHandler())
	return mux
}

// api wraps a handler with what every GitHub API call goes through: the call
// counter, injected faults, and the rate limits (with their headers).
func (s *Server) api(route string, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[route]++
		now := s.clock.Now()
		if now.Before(s.outageUntil) {
			status := s.outageStatus
			s.mu.Unlock()
			writeError(w, status, http.StatusText(status))
			return
		}
		if len(s.faults) > 0 {
			status := s.faults[0]
			s.faults = s.faults[1:]
			s.mu.Unlock()
			writeError(w, status, http.StatusText(status))
			return
		}
		if s.secondary > 0 {
			s.secondary--
			wait := s.secondaryWait
			s.mu.Unlock()
			if wait > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
			}
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
			writeJSON(w, http.StatusForbidden, map[string]string{
				"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
				"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
			})
			return
		}
		if s.rateLimit > 0 {
			b := s.budgets[s.budgetKey(r)]
			if b == nil || !now.Before(b.reset) {
				b = &budget{reset: now.Add(time.Hour).Truncate(time.Second)}
				s.budgets[s.budgetKey(r)] = b
			}
			w.Header().Set("X-RateLimit-Limit", strconv.Itoa(s.rateLimit))
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(b.reset.Unix(), 10))
			w.Header().Set("X-RateLimit-Resource", "core")
			if b.used >= s.rateLimit {
				status := s.rateStatus
				s.mu.Unlock()
				w.Header().Set("X-RateLimit-Remaining", "0")
				w.Header().Set("X-RateLimit-Used", strconv.Itoa(s.rateLimit))
				writeError(w, status, "API rate limit exceeded for installation.")
				return
			}
			b.used++
			w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.rateLimit-b.used))
			w.Header().Set("X-RateLimit-Used", strconv.Itoa(b.used))
		}
		s.mu.Unlock()
		h(w, r)
	}
}

// budgetKey names the rate-limit budget a request spends: its App (a JWT),
// its installation (an installation token) or its user (a PAT). Must be
// called with s.mu held.
func (s *Server) budgetKey(r *http.Request) string {
	token := bearer(r)
	if strings.Count(token, ".") == 2 {
		var claims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err == nil {
			// One budget per App, whichever of its ids the JWT names.
			if a, _, _ := s.appByIssuer(claims.Issuer); a != nil {
				return "app:" + strconv.FormatInt(a.id, 10)
			}
			return "app:" + claims.Issuer
		}
	}
	if t, ok := s.appTokens[token]; ok {
		return "installation:" + strconv.FormatInt(t.installationID, 10)
	}
	if p, ok := s.pats[token]; ok {
		return "user:" + p.Owner.Login
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "anonymous:" + host
}

// appFromJWT verifies the request's App JWT the way GitHub does and returns
// the App, or writes GitHub's 401 and returns nil.
func (s *Server) appFromJWT(w http.ResponseWriter, r *http.Request) *app {
	raw := bearer(r)
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err != nil {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, status, msg := s.appByIssuer(claims.Issuer)
	if a == nil {
		writeError(w, status, msg)
		return nil
	}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return a.key, nil })
	if err != nil {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return nil
	}
	now := s.clock.Now()
	switch {
	case claims.IssuedAt == nil || claims.IssuedAt.After(now):
		writeError(w, http.StatusUnauthorized, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")
	case claims.ExpiresAt == nil || !claims.ExpiresAt.After(now):
		writeError(w, http.StatusUnauthorized, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires")
	case claims.ExpiresAt.After(now.Add(maxJWTAhead)):
		writeError(w, http.StatusUnauthorized, "'Expiration time' claim ('exp') is too far in the future")
	default:
		return a
	}
	return nil
}

func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	a := s.appFromJWT(w, r)
	if a == nil {
		return
	}
	id, _ := parseID(r)
	s.mu.Lock()
	in, ok := s.installations[id]
	var body map[string]any
	if ok && in.AppID == a.id {
		body = installationJSON(s.API.URL, in)
	}
	s.mu.Unlock()
	if body == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// installationJSON is an installation as GET /app/installations/{id}
// answers it: GitHub's field names, suspended_at and suspended_by null
// unless suspended (then the time it was suspended, not the time asked),
// the account's current login under its numeric id.
func installationJSON(base string, in *installation) map[string]any {
	selection := "all"
	if len(in.Repositories) > 0 {
		selection = "selected"
	}
	body := map[string]any{
		"id":     in.ID,
		"app_id": in.AppID,
		"account": map[string]any{"login": in.Account.Login, "id": in.Account.ID, "type": in.Account.Type,
			"node_id": "O_" + strconv.FormatInt(in.Account.ID, 10), "site_admin": false},
		"target_id":            in.Account.ID,
		"target_type":          in.Account.Type,
		"repository_selection": selection,
		"access_tokens_url":    base + "/app/installations/" + strconv.FormatInt(in.ID, 10) + "/access_tokens",
		"repositories_url":     base + "/installation/repositories",
		"permissions":          in.Permissions,
		"events":               []string{},
		"single_file_name":     nil,
		"created_at":           in.createdAt.Format(time.RFC3339),
		"updated_at":           in.updatedAt.Format(time.RFC3339),
		"suspended_at":         nil,
		"suspended_by":         nil,
	}
	if in.suspended {
		body["suspended_at"] = in.suspendedAt.Format(time.RFC3339)
		body["suspended_by"] = map[string]any{"login": "octocat", "id": 583231, "type": "User"}
	}
	return body
}

var levels = map[string]int{"read": 1, "write": 2, "admin": 3}

func (s *Server) mintToken(w http.ResponseWriter, r *http.Request) {
	a := s.appFromJWT(w, r)
	if a == nil {
		return
	}
	id, _ := parseID(r)
	var req struct {
		Repositories  []string          `json:"repositories"`
		RepositoryIDs []int64           `json:"repository_ids"`
		Permissions   map[string]string `json:"permissions"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "Problems parsing JSON")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.installations[id]
	switch {
	case !ok || in.AppID != a.id:
		writeError(w, http.StatusNotFound, "Not Found")
		return
	case in.suspended:
		writeError(w, http.StatusForbidden, "This installation has been suspended")
		return
	}
	perms := req.Permissions
	if len(perms) == 0 {
		perms = maps.Clone(in.Permissions)
	}
	for name, level := range perms {
		if levels[level] == 0 || levels[level] > levels[in.Permissions[name]] {
			writeError(w, http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.")
			return
		}
	}
	selected := slices.Clone(req.Repositories)
	for _, id := range req.RepositoryIDs {
		i := slices.IndexFunc(in.Repositories, func(name string) bool { return RepositoryID(name) == id })
		if i < 0 {
			writeError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.")
			return
		}
		selected = append(selected, in.Repositories[i])
	}
	for _, repo := range selected {
		if len(in.Repositories) > 0 && !slices.Contains(in.Repositories, repo) {
			writeError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.")
			return
		}
	}
	now := s.clock.Now()
	tok := statefulToken()
	if s.tokenFormatFor(r.Header.Get(StatelessTokenHeader)) == TokenFormatStateless {
		tok = statelessToken(a.id, id, perms, selected, now, now.Add(s.tokenLifetime))
	}
	t := &appToken{installationID: id, permissions: perms, issuedAt: now, expiresAt: now.Add(s.tokenLifetime)}
	s.appTokens[tok] = t
	reply := map[string]any{
		"token":                tok,
		"expires_at":           t.expiresAt.UTC().Format(time.RFC3339),
		"permissions":          perms,
		"repository_selection": "all",
	}
	if len(selected) > 0 {
		var repos []map[string]any
		for _, name := range selected {
			repos = append(repos, map[string]any{"id": RepositoryID(name), "name": name, "full_name": in.Account.Login + "/" + name})
		}
		reply["repository_selection"], reply["repositories"] = "selected", repos
	}
	writeJSON(w, http.StatusCreated, reply)
}

// RepositoryID is the id the emulator gives a repository of an
// installation: stable, derived from its name.
func RepositoryID(name string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum32())
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	tok := bearer(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	cred, msg := s.authenticate(tok)
	if cred.app == nil {
		if msg == "" {
			msg = "Bad credentials"
		}
		writeError(w, http.StatusUnauthorized, msg)
		return
	}
	s.revoked[tok] = true
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) user(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	cred, msg := s.authenticate(bearer(r))
	layout := s.expirationStyle
	s.mu.Unlock()
	switch {
	case msg != "":
		writeError(w, http.StatusUnauthorized, msg)
		return
	case cred.app != nil:
		writeError(w, http.StatusForbidden, "Resource not accessible by integration")
		return
	}
	p := cred.pat
	w.Header().Set("X-OAuth-Scopes", strings.Join(p.Scopes, ", "))
	if !p.ExpiresAt.IsZero() {
		w.Header().Set("GitHub-Authentication-Token-Expiration", expirationHeader(p.ExpiresAt, layout))
	}
	writeJSON(w, http.StatusOK, map[string]any{"login": p.Owner.Login, "id": p.Owner.ID, "type": p.Owner.Type})
}

// installationRepositories answers an installation token with the
// repositories it may read (the emulator lists none), and anything else
// with 401 Bad credentials, as GitHub does.
func (s *Server) installationRepositories(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	cred, msg := s.authenticate(bearer(r))
	s.mu.Unlock()
	switch {
	case msg != "":
		writeError(w, http.StatusUnauthorized, msg)
	case cred.app == nil:
		writeError(w, http.StatusForbidden, "You must authenticate with an installation access token in order to list repositories for an installation.")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"total_count": 0, "repositories": []any{}})
	}
}

// expirationHeader formats like GitHub: "2026-12-01 10:00:00 UTC", or with a
// numeric offset in the other layout.
func expirationHeader(t time.Time, layout string) string {
	if layout == ExpirationLayoutOffset {
		return t.In(time.FixedZone("", -5*3600)).Format(layout)
	}
	return t.UTC().Format(layout)
}
