package github

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/bradleyfalzon/ghinstallation/v2"
	jwt "github.com/golang-jwt/jwt/v4"
	gh "github.com/google/go-github/v66/github"

	"github.com/credbroker/credbroker/broker"
)

// DefaultBaseURL is github.com's REST API.
const DefaultBaseURL = "https://api.github.com/"

// DefaultCallTimeout bounds each call to GitHub.
const DefaultCallTimeout = 15 * time.Second

// Config says which GitHub to talk to and as which App.
type Config struct {
	// BaseURL of the REST API: DefaultBaseURL, or for GitHub Enterprise
	// Server "https://HOST/api/v3/".
	BaseURL string
	// AppID and PrivateKey identify the GitHub App; both zero when only PATs
	// are used.
	AppID      int64
	PrivateKey *rsa.PrivateKey
	// AppClientID, when set, is the App JWT's iss in place of AppID (which
	// may then be zero): GitHub takes either and recommends the client ID,
	// on which its future features rely.
	AppClientID string
	// CallTimeout bounds each call; DefaultCallTimeout when zero.
	CallTimeout time.Duration
	// Transport carries the requests; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Clock turns rate-limit resets into waits and dates App JWTs; the
	// real clock when nil.
	Clock clock.PassiveClock
	// OnRateLimit, if set, hears GitHub's X-RateLimit-Remaining of every
	// answer that carries one.
	OnRateLimit func(remaining int)
}

// Client calls one GitHub. It is safe for concurrent use.
type Client struct {
	cfg     Config
	baseURL *url.URL
	app     *gh.Client // nil without an App
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if !strings.HasSuffix(cfg.BaseURL, "/") {
		cfg.BaseURL += "/"
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("GitHub base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.OnRateLimit != nil {
		cfg.Transport = rateLimitObserver{next: cfg.Transport, observe: cfg.OnRateLimit}
	}
	cfg.Transport = secondaryLimitWait{next: cfg.Transport}
	c := &Client{cfg: cfg, baseURL: base}
	if err := ValidateClientID(cfg.AppClientID); err != nil {
		return nil, err
	}
	hasApp := cfg.AppID != 0 || cfg.AppClientID != ""
	if hasApp != (cfg.PrivateKey != nil) {
		return nil, errors.New("a GitHub App needs an App id or client ID and a private key")
	}
	if hasApp {
		// ghinstallation v2.12.0 names the App by its id only; the signer
		// puts the client ID in its place.
		atr, err := ghinstallation.NewAppsTransportWithOptions(cfg.Transport, cfg.AppID,
			ghinstallation.WithSigner(clockSigner{ghinstallation.NewRSASigner(jwt.SigningMethodRS256, cfg.PrivateKey), cfg.Clock, cfg.AppClientID}))
		if err != nil {
			return nil, fmt.Errorf("GitHub App transport: %w", err)
		}
		atr.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
		c.app = c.newClient(atr)
	}
	return c, nil
}

// secondaryLimitWait gives a secondary rate limit that came without
// Retry-After GitHub's advised wait of a minute. Without it go-github would
// read X-RateLimit-Reset — the primary budget's hourly reset — as the wait,
// and refuse every call of the client until then, without asking GitHub.
type secondaryLimitWait struct{ next http.RoundTripper }

func (t secondaryLimitWait) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests) ||
		resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0" {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr == nil && bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")) {
		resp.Header.Set("Retry-After", strconv.Itoa(int(defaultSecondaryWait.Seconds())))
	}
	return resp, nil
}

// rateLimitObserver reports the rate-limit headers of every answer.
type rateLimitObserver struct {
	next    http.RoundTripper
	observe func(remaining int)
}

func (o rateLimitObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err == nil {
		if n, perr := strconv.Atoi(resp.Header.Get("X-RateLimit-Remaining")); perr == nil {
			o.observe(n)
		}
	}
	return resp, err
}

// clockSigner dates App JWTs by the Client's clock rather than the
// machine's, as ghinstallation does, so that the broker and an emulated
// GitHub can share a simulated clock. GitHub refuses an iat in its future
// and an exp more than 10 minutes ahead of its clock; iat is 60 s in the
// past, as GitHub advises (ghinstallation takes 30 s, so a host clock 30 s
// fast could not authenticate), and the JWT lives two minutes from now: a
// host clock up to a minute off either way still authenticates.
//
// It also names the App by its client ID when one is configured (issuer):
// ghinstallation sets iss to the App id itself, and takes no other.
type clockSigner struct {
	ghinstallation.Signer
	clock  clock.PassiveClock
	issuer string // the App's client ID; "" keeps ghinstallation's App id
}

func (s clockSigner) Sign(claims jwt.Claims) (string, error) {
	rc, ok := claims.(*jwt.RegisteredClaims)
	if !ok {
		// ghinstallation signs *jwt.RegisteredClaims; anything else would
		// go out with its own dates and issuer.
		return "", fmt.Errorf("sign App JWT: unexpected claims %T", claims)
	}
	now := s.clock.Now().Truncate(time.Second)
	rc.IssuedAt, rc.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)), jwt.NewNumericDate(now.Add(2*time.Minute))
	if s.issuer != "" {
		rc.Issuer = s.issuer
	}
	return s.Signer.Sign(rc)
}

// ValidateClientID refuses what cannot be a GitHub App's client ID
// ("Iv1.…" or "Iv23li…"): an App id given in its place, or anything that
// would not survive as a JWT claim. The empty string (no client ID) passes.
func ValidateClientID(id string) error {
	switch {
	case id == "":
		return nil
	case strings.Trim(id, "0123456789") == "":
		return fmt.Errorf("GitHub App client ID %q is a number, which is what an App id looks like; the client ID is on the App's settings page, like Iv23li…", id)
	case len(id) > 100 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != "":
		return fmt.Errorf("GitHub App client ID %q: want letters, digits, '.', '_' or '-' (at most 100 characters), like Iv23li…", id)
	}
	return nil
}

// RevokeInstallationToken invalidates an installation token before it
// expires (DELETE /installation/token, authenticated with the token itself),
// for a token that a newer one superseded or that no tenant uses.
func (c *Client) RevokeInstallationToken(ctx context.Context, token string) error {
	const op = "revoke installation token"
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	if _, err := c.withToken(token).Apps.RevokeInstallationToken(ctx); err != nil {
		return classify(op, err, statusReasons{http.StatusUnauthorized: broker.ReasonTokenRevoked}, c.cfg.Clock.Now())
	}
	return nil
}

// LoadPrivateKey reads a GitHub App private key: a PEM file holding an RSA
// key in PKCS#1 (what GitHub hands out) or PKCS#8 form.
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("GitHub App private key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("GitHub App private key %s: no PEM block", path)
	}
	if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("GitHub App private key %s: not a PKCS#1 or PKCS#8 private key", path)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("GitHub App private key %s: a %T, GitHub Apps sign with RSA", path, parsed)
	}
	return key, nil
}

func (c *Client) newClient(rt http.RoundTripper) *gh.Client {
	client := gh.NewClient(&http.Client{Transport: rt, Timeout: c.cfg.CallTimeout})
	client.BaseURL = c.baseURL
	return client
}

func (c *Client) withToken(token string) *gh.Client {
	return c.newClient(c.cfg.Transport).WithAuthToken(token)
}

func (c *Client) requireApp(op string) error {
	if c.app == nil {
		return fmt.Errorf("%s: %w", op, broker.ErrNoGitHubApp)
	}
	return nil
}

// Installation looks up an installation of the App: whose account it is on
// and whether it is suspended.
func (c *Client) Installation(ctx context.Context, id int64) (broker.Installation, error) {
	op := fmt.Sprintf("get installation %d", id)
	if err := c.requireApp(op); err != nil {
		return broker.Installation{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	inst, _, err := c.app.Apps.GetInstallation(ctx, id)
	if err != nil {
		return broker.Installation{}, classify(op, err, statusReasons{
			http.StatusUnauthorized: broker.ReasonAppCredentialsRejected,
			http.StatusNotFound:     broker.ReasonInstallationNotFound,
		}, c.cfg.Clock.Now())
	}
	perms, err := permissionsMap(inst.Permissions)
	if err != nil {
		return broker.Installation{}, fmt.Errorf("%s: %w", op, err)
	}
	return broker.Installation{
		ID: inst.GetID(),
		Account: broker.Owner{
			Login: inst.GetAccount().GetLogin(),
			ID:    inst.GetAccount().GetID(),
			Type:  broker.OwnerType(inst.GetAccount().GetType()),
		},
		Suspended:   inst.SuspendedAt != nil,
		Permissions: perms,
	}, nil
}

// MintInstallationToken asks GitHub for an installation token limited to
// permissions (default: packages read) and, if given, repositories.
func (c *Client) MintInstallationToken(ctx context.Context, installationID int64, permissions map[string]string, repositories []string) (broker.Credential, error) {
	op := fmt.Sprintf("mint token for installation %d", installationID)
	if err := c.requireApp(op); err != nil {
		return broker.Credential{}, err
	}
	if len(permissions) == 0 {
		permissions = broker.DefaultAppPermissions()
	}
	perms, err := installationPermissions(permissions)
	if err != nil {
		return broker.Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	tok, _, err := c.app.Apps.CreateInstallationToken(ctx, installationID, &gh.InstallationTokenOptions{
		Repositories: slices.Clone(repositories),
		Permissions:  perms,
	})
	if err != nil {
		return broker.Credential{}, classifyMint(op, err, c.cfg.Clock.Now())
	}
	granted, err := permissionsMap(tok.Permissions)
	if err != nil {
		return broker.Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	// Least privilege holds only if GitHub granted no repository beyond
	// those asked for (it lists them when a selection was made).
	for _, repo := range tok.Repositories {
		if len(repositories) > 0 && !slices.Contains(repositories, repo.GetName()) {
			return broker.Credential{}, fmt.Errorf("%s: GitHub granted repository %s, which was not asked for", op, repo.GetName())
		}
	}
	return broker.Credential{
		Kind:        broker.KindGitHubApp,
		Username:    broker.AppTokenUsername,
		Token:       tok.GetToken(),
		IssuedAt:    c.cfg.Clock.Now(),
		ExpiresAt:   tok.GetExpiresAt().Time,
		Permissions: granted,
	}, nil
}

// classifyMint tells a suspended installation (403 "This installation has
// been suspended") from other refusals.
func classifyMint(op string, err error, now time.Time) error {
	reasons := statusReasons{
		http.StatusUnauthorized:        broker.ReasonAppCredentialsRejected,
		http.StatusNotFound:            broker.ReasonInstallationNotFound,
		http.StatusForbidden:           broker.ReasonMissingScope,
		http.StatusUnprocessableEntity: broker.ReasonMissingScope,
	}
	var resp *gh.ErrorResponse
	if errors.As(err, &resp) && resp.Response != nil && resp.Response.StatusCode == http.StatusForbidden &&
		strings.Contains(strings.ToLower(resp.Message), "suspended") {
		reasons[http.StatusForbidden] = broker.ReasonInstallationSuspended
	}
	return classify(op, err, reasons, now)
}

// PackageScopes are the classic PAT scopes that let a token pull packages.
var PackageScopes = []string{"read:packages", "write:packages", "delete:packages"}

// Recheck asks GitHub whether a credential is still good: a PAT is
// validated again, an installation token lists what it may read. A
// credential GitHub no longer accepts is TOKEN_REVOKED.
func (c *Client) Recheck(ctx context.Context, cred broker.Credential) error {
	if cred.Kind == broker.KindPAT {
		_, err := c.ValidatePAT(ctx, cred.Token)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	_, _, err := c.withToken(cred.Token).Apps.ListRepos(ctx, &gh.ListOptions{PerPage: 1})
	if err != nil {
		return classify("check installation token", err, statusReasons{http.StatusUnauthorized: broker.ReasonTokenRevoked}, c.cfg.Clock.Now())
	}
	return nil
}

// ValidatePAT asks GitHub whose classic PAT this is, which scopes it has and
// when it expires. A PAT without a package scope returns its owner together
// with a MISSING_SCOPE error. Fine-grained PATs are refused without a call:
// GitHub Packages accepts only classic PATs.
func (c *Client) ValidatePAT(ctx context.Context, token string) (broker.PATOwner, error) {
	const op = "validate PAT"
	if strings.HasPrefix(token, "github_pat_") {
		return broker.PATOwner{}, &Error{Op: op, Cause: broker.ReasonFineGrainedPAT,
			Err: errors.New("fine-grained PATs cannot pull from GitHub Packages; use a classic PAT with read:packages")}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	user, resp, err := c.withToken(token).Users.Get(ctx, "")
	if err != nil {
		return broker.PATOwner{}, classify(op, err, statusReasons{
			http.StatusUnauthorized: broker.ReasonTokenRevoked,
			http.StatusForbidden:    broker.ReasonMissingScope,
		}, c.cfg.Clock.Now())
	}
	owner := broker.PATOwner{
		Owner:     broker.Owner{Login: user.GetLogin(), ID: user.GetID(), Type: broker.OwnerType(user.GetType())},
		Scopes:    parseScopes(resp.Header.Get("X-OAuth-Scopes")),
		ExpiresAt: resp.TokenExpiration.Time,
	}
	if !slices.ContainsFunc(owner.Scopes, func(s string) bool { return slices.Contains(PackageScopes, s) }) {
		return owner, &Error{Op: op, Cause: broker.ReasonMissingScope,
			Err: fmt.Errorf("the PAT of %s has scopes %v; pulling packages needs read:packages", user.GetLogin(), owner.Scopes)}
	}
	return owner, nil
}

func parseScopes(header string) []string {
	var scopes []string
	for s := range strings.SplitSeq(header, ",") {
		if s = strings.TrimSpace(s); s != "" {
			scopes = append(scopes, s)
		}
	}
	return scopes
}

// installationPermissions converts {"packages": "read"} into go-github's
// struct through its JSON names, refusing names GitHub does not know.
func installationPermissions(perms map[string]string) (*gh.InstallationPermissions, error) {
	data, err := json.Marshal(perms)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var out gh.InstallationPermissions
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("permissions %v: %w", perms, err)
	}
	return &out, nil
}

func permissionsMap(p *gh.InstallationPermissions) (map[string]string, error) {
	if p == nil {
		return nil, nil
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	return out, json.Unmarshal(data, &out)
}
