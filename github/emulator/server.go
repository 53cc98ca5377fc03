// Package emulator is a GitHub emulator: an httptest server that behaves
// like GitHub for every call credbroker makes, and a ghcr-like registry token
// service beside it. Tests, benchmarks and dev mode use it because GitHub
// itself is out of reach, and because it can do what GitHub will not do on
// demand: suspend an installation, revoke a token, run out of rate limit,
// fail with a 502, or lag behind a fresh token.
//
// Like GitHub it verifies App JWTs (RS256 with the App's public key, iss =
// App id or client ID, iat not in its future, exp in its future and at most 10 minutes
// ahead of its clock), mints installation tokens that expire (1 h unless
// set) in GitHub's stateless 2026 shape (or the stateful one), refuses
// permissions or repositories an installation lacks, answers /user for
// classic PATs with X-OAuth-Scopes and GitHub-Authentication-Token-Expiration,
// and counts every call. Its registry answers a login with an unknown,
// revoked or expired credential 403 DENIED, lets App installation tokens
// log in but denies them private pulls, as ghcr.io does (unless told
// otherwise), and answers containerd's OAuth2 POST to /token 405, as
// ghcr.io does, so that clients fall back to GET.
package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Routes, as counted by Calls.
const (
	RouteGetInstallation = "GET /app/installations/{id}"
	RouteMintToken       = "POST /app/installations/{id}/access_tokens"
	RouteRevokeToken     = "DELETE /installation/token"
	RouteUser            = "GET /user"
	RouteRegistryToken   = "GET /token"
	// RouteRegistryTokenPOST is the OAuth2 password grant containerd tries
	// first; the realm answers it 405, as ghcr.io does.
	RouteRegistryTokenPOST = "POST /token"
	// RouteInstallationRepositories is what an installation token may
	// read; credbroker asks it whether a token is still good.
	RouteInstallationRepositories = "GET /installation/repositories"
	RouteManifest                 = "HEAD /v2/{name}/manifests/{ref}"
)

// Account is a GitHub user or organization.
type Account struct {
	Login string
	ID    int64
	Type  string // "User" or "Organization"
}

// AppInstallation is an App's installation on an account, as the emulated
// GitHub holds it.
type AppInstallation struct {
	ID    int64
	AppID int64
	// Account the App is installed on.
	Account Account
	// Permissions the installation was granted, e.g. {"packages": "read"}.
	Permissions map[string]string
	// Repositories the installation may access; empty means all.
	Repositories []string
}

// IssuedPAT is a classic personal access token as the emulated GitHub
// issued it: whose it is, its scopes and its expiry.
type IssuedPAT struct {
	Owner  Account
	Scopes []string
	// ExpiresAt is the token's expiry; zero means it never expires.
	ExpiresAt time.Time
	// Orgs are further owners whose packages the PAT's user may read.
	Orgs []string
}

// ExpirationLayouts are the two formats GitHub uses for
// GitHub-Authentication-Token-Expiration.
const (
	ExpirationLayoutZone   = "2006-01-02 15:04:05 MST"
	ExpirationLayoutOffset = "2006-01-02 15:04:05 -0700"
)

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	// API serves the GitHub REST API; Registry serves /token and /v2/.
	API      *httptest.Server
	Registry *httptest.Server

	mu              sync.Mutex
	clock           clock.PassiveClock
	tokenLifetime   time.Duration
	tokenFormat     TokenFormat
	apps            map[int64]*app
	installations   map[int64]*installation
	pats            map[string]*IssuedPAT
	appTokens       map[string]*appToken
	revoked         map[string]bool
	calls           map[string]int
	faults          []int // HTTP statuses the next API calls fail with
	outageUntil     time.Time
	outageStatus    int
	secondary       int // next API calls refused by a secondary limit
	secondaryWait   time.Duration
	rateLimit       int // calls per hour and credential; 0 = unlimited
	rateStatus      int // what a call past the limit gets: 403 or 429
	budgets         map[string]*budget
	lag             time.Duration
	expirationStyle string
	registry        *registry
	tokenRequests   []TokenRequest                        // the realm's, for TokenRequests
	upstream        atomic.Pointer[httputil.ReverseProxy] // RunDistribution's registry
}

// budget is one credential's primary rate limit window: GitHub counts per
// App (JWT), per installation (its tokens) and per user (PATs).
type budget struct {
	used  int
	reset time.Time
}

type installation struct {
	AppInstallation
	suspended   bool
	suspendedAt time.Time // when suspended, as GitHub reports it
	createdAt   time.Time
	updatedAt   time.Time
}

type appToken struct {
	installationID int64
	permissions    map[string]string
	issuedAt       time.Time
	expiresAt      time.Time
}

// NewServer starts an emulator with no Apps, installations or PATs, on
// loopback.
func NewServer() *Server { return NewServerOn("127.0.0.1", 0) }

// NewServerOn is NewServer listening on host (an address of this machine),
// for clients elsewhere: the Pods of a node reach the machine at its
// bridge's address, not at loopback. The registry listens on registryPort,
// or any free port when 0: a kubelet's credential provider config names
// the registry's port before the registry starts.
func NewServerOn(host string, registryPort int) *Server {
	s := &Server{
		clock:           clock.RealClock{},
		tokenLifetime:   time.Hour,
		tokenFormat:     TokenFormatStateless,
		apps:            map[int64]*app{},
		installations:   map[int64]*installation{},
		pats:            map[string]*IssuedPAT{},
		appTokens:       map[string]*appToken{},
		revoked:         map[string]bool{},
		calls:           map[string]int{},
		secondaryWait:   time.Minute,
		rateStatus:      http.StatusForbidden,
		budgets:         map[string]*budget{},
		expirationStyle: ExpirationLayoutZone,
	}
	s.API = serve(host, 0, s.apiHandler())
	s.registry = newRegistry()
	s.Registry = serve(host, registryPort, s.registryHandler())
	return s
}

// serve starts an httptest server on host:port; like httptest.NewServer,
// it panics when it cannot listen.
func serve(host string, port int, h http.Handler) *httptest.Server {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		panic(fmt.Sprintf("emulator: listen on %s: %v", host, err))
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv
}

// Close stops both servers.
func (s *Server) Close() {
	s.API.Close()
	s.Registry.Close()
}

// URL is the API base URL, for github.Config.BaseURL.
func (s *Server) URL() string { return s.API.URL + "/" }

// SetClock replaces the emulator's clock (time.Now by default).
func (s *Server) SetClock(clk clock.PassiveClock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = clk
}

// SetTokenLifetime sets how long minted installation tokens live.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLifetime = d
}

// SetRateLimit gives each credential a budget of API calls per hour, like
// GitHub's primary rate limit (per App, installation or user); past it
// calls fail with 403 (or what SetRateLimitStatus says) and
// X-RateLimit-Remaining: 0 until the reset. 0 removes the limit.
func (s *Server) SetRateLimit(perHour int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit, s.budgets = perHour, map[string]*budget{}
}

// SetRateLimitStatus sets the status of a call past the primary limit:
// GitHub sends 403 or 429.
func (s *Server) SetRateLimitStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateStatus = status
}

// SecondaryLimitNext makes the next n API calls hit a secondary rate limit
// with Retry-After: wait (as whole seconds), or with no Retry-After when
// wait is zero (GitHub then advises waiting a minute; its answer still
// carries the primary budget's X-RateLimit-Reset, up to an hour away).
func (s *Server) SecondaryLimitNext(n int, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secondary, s.secondaryWait = n, wait
}

// FailNext makes the next API calls fail with these HTTP statuses, in order.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, statuses...)
}

// FailUntil makes every API call fail with status until the emulator's
// clock reaches t: an outage of GitHub.
func (s *Server) FailUntil(t time.Time, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outageUntil, s.outageStatus = t, status
}

// SetReplicationLag makes a fresh installation token unusable (401) for d
// after its mint, as GitHub's replication sometimes does.
func (s *Server) SetReplicationLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = d
}

// SetExpirationLayout chooses the format of the
// GitHub-Authentication-Token-Expiration header.
func (s *Server) SetExpirationLayout(layout string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expirationStyle = layout
}

// AddInstallation installs an App on an account.
func (s *Server) AddInstallation(in AppInstallation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC().Truncate(time.Second)
	s.installations[in.ID] = &installation{AppInstallation: in, createdAt: now, updatedAt: now}
}

// SuspendInstallation suspends an installation: its tokens stop working and
// no new ones are minted.
func (s *Server) SuspendInstallation(id int64) { s.setSuspended(id, true) }

// UnsuspendInstallation lifts a suspension.
func (s *Server) UnsuspendInstallation(id int64) { s.setSuspended(id, false) }

func (s *Server) setSuspended(id int64, suspended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.installations[id]; ok && in.suspended != suspended {
		in.suspended = suspended
		in.updatedAt = s.clock.Now().UTC().Truncate(time.Second)
		in.suspendedAt = time.Time{}
		if suspended {
			in.suspendedAt = in.updatedAt
		}
	}
}

// RenameAccount gives account id a new login, as a user's or an
// organization's rename does on GitHub: every installation on it reports
// the new login, under the same id.
func (s *Server) RenameAccount(id int64, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.installations {
		if in.Account.ID == id {
			in.Account.Login = login
			in.updatedAt = s.clock.Now().UTC().Truncate(time.Second)
		}
	}
}

// DeleteInstallation uninstalls the App: the installation is gone, and so
// are its tokens.
func (s *Server) DeleteInstallation(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.installations, id)
}

// AddPAT registers a classic PAT.
func (s *Server) AddPAT(token string, pat IssuedPAT) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := pat
	s.pats[token] = &p
}

// Revoke revokes a PAT or installation token.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[token] = true
}

// Calls returns how many calls a route has had, e.g. Calls(RouteMintToken).
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// Tokens lists the installation tokens minted so far (for tests that check
// a token never leaks).
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.appTokens))
	for tok := range s.appTokens {
		out = append(out, tok)
	}
	return out
}

// credential is who a token is, as the API and the registry see it.
type credential struct {
	pat *IssuedPAT
	app *appToken
}

// authenticate resolves a PAT or installation token; "" means it is unknown,
// revoked, expired, of a suspended or deleted installation, or too fresh.
// It must be called with s.mu held.
func (s *Server) authenticate(token string) (credential, string) {
	now := s.clock.Now()
	if token == "" || s.revoked[token] {
		return credential{}, "Bad credentials"
	}
	if p, ok := s.pats[token]; ok {
		if !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt) {
			return credential{}, "Bad credentials"
		}
		return credential{pat: p}, ""
	}
	t, ok := s.appTokens[token]
	if !ok || !now.Before(t.expiresAt) {
		return credential{}, "Bad credentials"
	}
	in, ok := s.installations[t.installationID]
	if !ok || in.suspended {
		return credential{}, "Bad credentials"
	}
	if now.Sub(t.issuedAt) < s.lag {
		return credential{}, "Bad credentials"
	}
	return credential{app: t}, ""
}

// writeJSON answers like GitHub: JSON with a message and documentation_url
// for errors.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"message": message, "documentation_url": "https://docs.github.com/rest"})
}

// randomToken makes a random secret: prefix and 80 hex digits (demo PATs,
// registry token ids). Installation tokens have GitHub's shapes (tokens.go).
func randomToken(prefix string) string {
	b := make([]byte, 40)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// bearer extracts the token of an "Authorization: token X" or "Bearer X"
// header, as GitHub accepts both.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, prefix := range []string{"token ", "Bearer ", "bearer "} {
		if strings.HasPrefix(h, prefix) {
			return strings.TrimPrefix(h, prefix)
		}
	}
	return ""
}

func parseID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil
}
