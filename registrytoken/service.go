package registrytoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
)

// Paths the service is served at.
const (
	TokenPath = "/registry/token"
	JWKSPath  = "/registry/jwks.json"
)

// Defaults of a Config.
const (
	DefaultTTL             = 5 * time.Minute
	DefaultRefreshTTL      = time.Hour
	DefaultNamespacePrefix = "cluster.local/{namespace}/"
)

// Bounds of the Pod checks refreshes make: an answer is kept PodCheckTTL,
// so that a client refreshing in a loop costs the API server two reads
// per Pod per PodCheckTTL, not two per refresh; a Pod deleted meanwhile
// refreshes that much longer, as a reviewed token is cached
// (auth.PodTokenTTL).
const (
	PodCheckTTL     = 10 * time.Second
	podChecksCached = 4096
)

// Config describes the registry the service issues tokens for.
type Config struct {
	// Service is the registry's service name (auth.token.service): requests
	// must name it, and tokens carry it as their audience.
	Service string
	// Issuer is the iss the registry expects (auth.token.issuer).
	Issuer string
	// TTL of access tokens; DefaultTTL when zero.
	TTL time.Duration
	// RefreshTTL of refresh tokens (OAuth2 access_type=offline);
	// DefaultRefreshTTL when zero.
	RefreshTTL time.Duration
	// PublicPrefixes are repository prefixes ("platform/") anyone may pull,
	// without credentials; each is a path of whole components
	// (ParsePublicPrefix), and none may cover NamespacePrefix.
	PublicPrefixes []string
	// NamespacePrefix is where a namespace's own repositories are, with
	// "{namespace}" for its name; DefaultNamespacePrefix when empty. Its
	// first path component cannot be a GitHub login (it holds a '.' or a
	// '_'), so no namespace's name reaches an owner's repositories.
	NamespacePrefix string
	// OwnerPrefix is where a tenant owner's repositories are, with
	// "{login}" for its login (lowercase) and "{id}" for its numeric id;
	// DefaultOwnerPrefix when empty. Keyed by login, an owner's
	// repositories go to whoever registers its old login after a rename;
	// IDOwnerPrefix keeps them with the account.
	OwnerPrefix string
	// Robots, if set, are the per-namespace credentials the pull Secrets
	// carry, taken beside ServiceAccount tokens.
	Robots *RobotPasswords
	// BoundPods, if set, lets a ServiceAccount's refresh token be checked
	// at each refresh; without it ServiceAccounts get no refresh token
	// (clients then authenticate with their token again).
	BoundPods BoundPods
	// Clock dates tokens; the real clock when nil.
	Clock clock.PassiveClock
}

// Service answers token requests. Its Handler serves TokenPath (GET as in
// the token specification, POST as its OAuth2 flavour, which containerd
// tries first) and JWKSPath.
type Service struct {
	cfg Config
	// checked keeps BoundPods' answers (nil, or a *broker.DeniedError)
	// by Pod, for PodCheckTTL.
	checked *cache.LRUExpireCache
	keys    *Keys
	pods    Pods
	owners  broker.NamespaceOwners
	log     *slog.Logger
}

// New returns the service.
func New(cfg Config, keys *Keys, pods Pods, owners broker.NamespaceOwners, log *slog.Logger) (*Service, error) {
	if cfg.NamespacePrefix == "" {
		cfg.NamespacePrefix = DefaultNamespacePrefix
	}
	if err := checkNamespacePrefix(cfg.NamespacePrefix); err != nil {
		return nil, err
	}
	if cfg.OwnerPrefix == "" {
		cfg.OwnerPrefix = DefaultOwnerPrefix
	}
	if err := checkOwnerPrefix(cfg.OwnerPrefix, cfg.NamespacePrefix); err != nil {
		return nil, err
	}
	publics := make([]string, len(cfg.PublicPrefixes))
	for i, p := range cfg.PublicPrefixes {
		var err error
		if publics[i], err = ParsePublicPrefix(p); err != nil {
			return nil, err
		}
		// A public prefix over the namespaces' repositories would hand
		// every namespace's images to anyone.
		fixed, _, _ := strings.Cut(cfg.NamespacePrefix, "{namespace}")
		if fixed != "" && (strings.HasPrefix(publics[i], fixed) || strings.HasPrefix(fixed, publics[i])) {
			return nil, fmt.Errorf("registry public prefix %q: it covers the namespaces' own repositories (%s)", p, cfg.NamespacePrefix)
		}
	}
	cfg.PublicPrefixes = publics
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Service{cfg: cfg, keys: keys, pods: pods, owners: owners, log: log,
		checked: cache.NewLRUExpireCacheWithClock(podChecksCached, cfg.Clock)}, nil
}

// checkNamespacePrefix refuses a template that leaves out the namespace,
// or whose first component a GitHub login could take (logins are letters,
// digits and '-'): a namespace named after another tenant's owner would
// reach that owner's repositories.
func checkNamespacePrefix(template string) error {
	if !strings.Contains(template, "{namespace}") || !strings.HasSuffix(template, "/") {
		return fmt.Errorf("registry namespace prefix %q: want a path ending in '/' with {namespace} in it", template)
	}
	first, _, _ := strings.Cut(template, "/")
	if !strings.ContainsAny(first, "._") {
		return fmt.Errorf("registry namespace prefix %q: its first component %q could be a GitHub login; put a '.' or '_' in it", template, first)
	}
	if _, err := reference.ParseNamed("registry.invalid/" + strings.ReplaceAll(template, "{namespace}", "ns") + "x"); err != nil {
		return fmt.Errorf("registry namespace prefix %q: not a repository path: %w", template, err)
	}
	return nil
}

// namespacePrefix is where namespace's own repositories are.
func (s *Service) namespacePrefix(namespace string) string {
	return strings.ReplaceAll(s.cfg.NamespacePrefix, "{namespace}", namespace)
}

// Handler serves the token endpoint and the key set.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+TokenPath, s.get)
	mux.HandleFunc("POST "+TokenPath, s.post)
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.keys.JWKS())
	})
	return mux
}

// requestError is an answer other than a token: the status, and the OAuth2
// error code (RFC 6749 5.2) with its description.
type requestError struct {
	status      int
	code, descr string
}

func (e *requestError) Error() string { return e.code + ": " + e.descr }

func badRequest(code, format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: code, descr: fmt.Sprintf(format, args...)}
}

// get is the token specification's GET: Basic credentials (a ServiceAccount
// token as the password) or none, service and scope in the query.
func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := s.authenticateBasic(r)
	var resp map[string]any
	if err == nil {
		resp, err = s.issue(r.Context(), "GET", c, q.Get("service"), q["scope"], false)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp["token"] = resp["access_token"]
	writeJSON(w, http.StatusOK, resp)
}

// post is the OAuth2 flavour: grant_type password (username and a
// ServiceAccount token as password) or refresh_token.
func (s *Service) post(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, badRequest("invalid_request", "the body is not a form: %v", err))
		return
	}
	f := r.PostForm
	var c caller
	var err error
	switch f.Get("grant_type") {
	case "password":
		if f.Get("username") == "" || f.Get("password") == "" {
			err = badRequest("invalid_request", "grant_type password needs username and password")
			break
		}
		c, err = s.authenticatePassword(r.Context(), f.Get("username"), f.Get("password"))
	case "refresh_token":
		c, err = s.authenticateRefresh(r.Context(), f.Get("refresh_token"))
	case "":
		err = badRequest("invalid_request", "grant_type is required")
	default:
		err = badRequest("unsupported_grant_type", "grant_type %q: want password or refresh_token", f.Get("grant_type"))
	}
	if err == nil && f.Get("client_id") == "" {
		err = badRequest("invalid_request", "client_id is required")
	}
	var resp map[string]any
	if err == nil {
		resp, err = s.issue(r.Context(), "POST "+f.Get("grant_type"), c, f.Get("service"), f["scope"], f.Get("access_type") == "offline")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// issue grants c what it may of the scopes asked, and signs it. flow, how
// the token was asked for, goes to the audit record.
func (s *Service) issue(ctx context.Context, flow string, c caller, service string, scopes []string, offline bool) (map[string]any, error) {
	if service != s.cfg.Service {
		return nil, badRequest("invalid_request", "service %q: this token service issues tokens for %q", service, s.cfg.Service)
	}
	asked, err := parseScopes(scopes)
	if err != nil {
		return nil, badRequest("invalid_scope", "%v", err)
	}
	granted, err := s.grant(c, asked)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Clock.Now()
	claims := struct {
		jwt.Claims
		Access []ResourceAccess `json:"access"`
	}{Claims: jwt.Claims{Issuer: s.cfg.Issuer, Subject: c.subject(), Audience: jwt.Audience{s.cfg.Service},
		Expiry: jwt.NewNumericDate(now.Add(s.cfg.TTL)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		IssuedAt: jwt.NewNumericDate(now), ID: newID()}, Access: granted}
	token, err := jwt.Signed(s.keys.signing).Claims(claims).Serialize()
	if err != nil {
		return nil, fmt.Errorf("sign a registry token: %w", err)
	}
	resp := map[string]any{"access_token": token, "expires_in": int(s.cfg.TTL.Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
		"scope": scopeString(granted)}
	if offline && s.refreshable(c) {
		if resp["refresh_token"], err = s.refreshToken(c, now); err != nil {
			return nil, err
		}
	}
	s.log.InfoContext(ctx, "audit", slog.String("method", "RegistryToken"), slog.String("flow", flow), slog.String("subject", c.subject()),
		slog.String("asked", scopeString(asked)), slog.String("granted", scopeString(granted)))
	return resp, nil
}

// grant is what c may do of asked: pull on repositories under its
// tenant's owners and its namespace's prefix, and under the public
// prefixes; push under its tenant's owner and its namespace's prefix, for
// a ServiceAccount of a tenant with RegistryPush (a robot, which every
// kubelet of the namespace reads, only pulls), outside the public
// prefixes; nothing else (no delete, no
// catalog), which the registry then refuses.
func (s *Service) grant(c caller, asked []ResourceAccess) ([]ResourceAccess, error) {
	pull := slices.Clone(s.cfg.PublicPrefixes)
	var push []string
	if c.namespace != "" {
		t, ok, err := s.owners.NamespaceOwner(c.namespace)
		if err != nil {
			return nil, fmt.Errorf("find the tenant of namespace %s: %w", c.namespace, err)
		}
		if ok {
			own := []string{s.namespacePrefix(c.namespace)}
			if p := s.ownerPrefix(t.Owner); p != "" {
				own = append(own, p)
			}
			pull = append(pull, own...)
			for _, o := range t.AllowedOwners {
				if p := s.ownerPrefix(broker.Owner{Login: o}); p != "" {
					pull = append(pull, p)
				}
			}
			if t.RegistryPush && c.serviceAccount != "" {
				push = own
			}
		}
	}
	granted := []ResourceAccess{}
	for _, a := range asked {
		if a.Type != "repository" {
			continue
		}
		var actions []string
		if slices.Contains(a.Actions, "pull") && under(a.Name, pull) {
			actions = append(actions, "pull")
		}
		// Never a push under a public prefix, which every tenant pulls: not
		// even for a tenant whose owner's login is the prefix's name.
		if slices.Contains(a.Actions, "push") && under(a.Name, push) && !under(a.Name, s.cfg.PublicPrefixes) {
			actions = append(actions, "push")
		}
		if len(actions) > 0 {
			granted = append(granted, ResourceAccess{Type: a.Type, Name: a.Name, Actions: actions})
		}
	}
	return granted, nil
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var re *requestError
	if !errors.As(err, &re) {
		status := http.StatusInternalServerError
		if errors.Is(err, broker.ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
		s.log.WarnContext(r.Context(), "registry token", slog.Any("error", err))
		re = &requestError{status: status, code: "server_error", descr: "the token service cannot answer now"}
	}
	if re.status < http.StatusInternalServerError {
		// Every refusal is an audit line, as every token issued is: who
		// tried (a robot's name, which is no secret; never a password or
		// a token) and why it was refused.
		s.log.InfoContext(r.Context(), "audit", slog.String("method", "RegistryToken"), slog.String("flow", flowOf(r)),
			slog.String("result", "refused"), slog.Int("status", re.status), slog.String("error", re.code),
			slog.String("reason", re.descr), slog.String("robot", robotOf(r)), slog.String("peer", r.RemoteAddr))
	}
	if re.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="credbroker registry token service"`)
	}
	writeJSON(w, re.status, map[string]string{"error": re.code, "error_description": re.descr})
}

// flowOf is how a token was asked for, as the audit names it.
func flowOf(r *http.Request) string {
	if r.Method == http.MethodPost {
		return "POST " + r.PostForm.Get("grant_type")
	}
	return r.Method
}

// robotOf is the robot user name a request authenticates with, or "": any
// other user name goes unlogged, for it may be anything (a token pasted in
// the wrong field).
func robotOf(r *http.Request) string {
	user, _, _ := r.BasicAuth()
	if r.Method == http.MethodPost {
		user = r.PostForm.Get("username")
	}
	if !isRobot(user) || len(user) > 100 {
		return ""
	}
	return user
}

func scopeString(as []ResourceAccess) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, " ")
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
