package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/distribution/reference"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/loopback"
)

// manifestAccept lists the manifest types a pull client accepts, so the
// registry answers the HEAD the way it would answer a real pull.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// replicationLagRetries are the waits before retrying a 401/403 for a
// freshly minted token: GitHub takes a moment to replicate a new token, and
// calls with it can fail meanwhile.
var replicationLagRetries = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}

// PullProberConfig configures a PullProber; the zero value probes over HTTPS with
// real time.
type PullProberConfig struct {
	// Transport carries the requests; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Timeout bounds each request; 15s when zero.
	Timeout time.Duration
	// PlainHTTP reports whether a registry host speaks plain HTTP; by
	// default only loopback hosts do (as docker and crane assume).
	PlainHTTP func(host string) bool
	// FreshFor is how long after its mint a token gets the replication-lag
	// retries; 30s when zero.
	FreshFor time.Duration
	Clock    clock.PassiveClock // the real clock when nil
	// Sleep waits between replication-lag retries; tests make it instant.
	Sleep func(context.Context, time.Duration) error
	// Recheck asks GitHub whether a credential is still good (Client.Recheck).
	// ghcr.io answers 403 DENIED at its token endpoint alike for a revoked
	// or expired credential and for one that may not pull, so a refused
	// login is told apart by asking GitHub; without Recheck it is named
	// NO_PACKAGE_ACCESS or APP_TOKEN_NOT_ACCEPTED.
	Recheck func(ctx context.Context, cred broker.Credential) error
}

// PullProber proves that a credential pulls an image, with the same token
// handshake a pull client performs, before the credential is published.
type PullProber struct {
	cfg    PullProberConfig
	client *http.Client
}

// NewPullProber returns a PullProber.
func NewPullProber(cfg PullProberConfig) *PullProber {
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultCallTimeout
	}
	if cfg.PlainHTTP == nil {
		cfg.PlainHTTP = loopback.Is
	}
	if cfg.FreshFor == 0 {
		cfg.FreshFor = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	// Redirects are not followed with credentials: the handshake never needs
	// them, and following one could hand the token to another host.
	client := &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &PullProber{cfg: cfg, client: client}
}

// Probe returns nil when cred can pull image, else an *Error whose reason
// says why not: TOKEN_REVOKED (the registry rejects the login),
// APP_TOKEN_NOT_ACCEPTED (an App token logged in but was denied the pull),
// NO_PACKAGE_ACCESS, IMAGE_NOT_FOUND or REGISTRY_UNREACHABLE.
func (p *PullProber) Probe(ctx context.Context, cred broker.Credential, image string) error {
	op := "probe pull of " + image
	ref, err := reference.ParseNamed(image)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	target := p.target(reference.Domain(ref))
	target.repo, target.ref = reference.Path(ref), "latest"
	if d, ok := ref.(reference.Digested); ok {
		target.ref = d.Digest().String()
	} else if t, ok := ref.(reference.Tagged); ok {
		target.ref = t.Tag()
	}

	fresh := p.cfg.Clock.Since(cred.IssuedAt) < p.cfg.FreshFor
	for attempt := 0; ; attempt++ {
		status, err := p.handshake(ctx, cred, target)
		if err == nil {
			return nil
		}
		lagging := status == http.StatusUnauthorized || status == http.StatusForbidden
		if !fresh || !lagging || attempt == len(replicationLagRetries) {
			return &Error{Op: op, Cause: broker.ReasonOf(err), Status: status, Temporary: isTemporary(err), Err: err}
		}
		if err := p.cfg.Sleep(ctx, replicationLagRetries[attempt]); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}

// Login returns nil when the registry at host takes cred, as "docker
// login" asks it: GET /v2/ with basic auth, or for a token registry a token
// with no scope from the challenge's realm. Errors are *Error as Probe's;
// a 403 is the registry refusing the login, since no repository was asked
// for.
func (p *PullProber) Login(ctx context.Context, cred broker.Credential, host string) error {
	status, err := p.login(ctx, cred, p.target(host))
	if err != nil {
		return &Error{Op: "log in to " + host, Cause: broker.ReasonOf(err), Status: status, Temporary: isTemporary(err), Err: err}
	}
	return nil
}

func (p *PullProber) login(ctx context.Context, cred broker.Credential, t probeTarget) (int, error) {
	scheme, params, status, err := p.challenge(ctx, t)
	if err != nil || scheme == "" { // "": an open registry
		return status, err
	}
	// The login goes to /v2/ itself (basic auth) or to the token realm.
	login := t.url("/v2/")
	if scheme == "bearer" {
		if login, err = tokenURL(params, t, ""); err != nil {
			return 0, err
		}
	}
	resp, err := p.do(ctx, http.MethodGet, login, http.Header{"Authorization": {basicAuth(cred)}})
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.StatusCode, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return resp.StatusCode, reasonErr(broker.ReasonTokenRevoked, "the registry rejected the login of %s", cred.Username)
	}
	return resp.StatusCode, unexpected(resp.StatusCode, "login")
}

// target is host with the scheme the prober speaks to it.
func (p *PullProber) target(host string) probeTarget {
	if p.cfg.PlainHTTP(host) {
		return probeTarget{scheme: "http", host: host}
	}
	return probeTarget{scheme: "https", host: host}
}

// challenge asks /v2/ how to log in: the scheme, "basic" or "bearer", and
// its parameters, or "" for an open registry; the status is the answer's.
func (p *PullProber) challenge(ctx context.Context, t probeTarget) (scheme string, params map[string]string, status int, err error) {
	resp, err := p.do(ctx, http.MethodGet, t.url("/v2/"), nil)
	if err != nil {
		return "", nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return "", nil, resp.StatusCode, nil
	case http.StatusUnauthorized:
		raw, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
		if scheme = strings.ToLower(raw); scheme != "basic" && scheme != "bearer" {
			return "", nil, resp.StatusCode, reasonErr(broker.ReasonRegistryUnreachable, "the registry asks for unsupported authentication %q", raw)
		}
		return scheme, params, resp.StatusCode, nil
	}
	return "", nil, resp.StatusCode, unexpected(resp.StatusCode, "GET /v2/")
}

type probeTarget struct {
	scheme, host, repo, ref string
}

func (t probeTarget) url(path string) string {
	return t.scheme + "://" + t.host + path
}

// handshake is one pull attempt: /v2/ for the challenge, the realm for a
// bearer token, then HEAD of the manifest. It returns the HTTP status of the
// step that failed.
func (p *PullProber) handshake(ctx context.Context, cred broker.Credential, t probeTarget) (int, error) {
	scheme, params, status, err := p.challenge(ctx, t)
	if err != nil {
		return status, err
	}
	authorization := "" // an open registry: the login is not needed, and not sent
	switch scheme {
	case "basic":
		authorization = basicAuth(cred)
	case "bearer":
		token, status, err := p.bearerToken(ctx, cred, t, params)
		if err != nil {
			return status, err
		}
		authorization = "Bearer " + token
	}

	resp, err := p.do(ctx, http.MethodHead, t.url("/v2/"+t.repo+"/manifests/"+t.ref), http.Header{
		"Accept":        {manifestAccept},
		"Authorization": {authorization},
	})
	if err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.StatusCode, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		if resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(authorization, "Basic ") {
			// A registry with basic auth checks the login on each request.
			return resp.StatusCode, reasonErr(broker.ReasonTokenRevoked, "the registry rejected the login of %s", cred.Username)
		}
		return resp.StatusCode, denied(cred, t)
	case http.StatusNotFound:
		return resp.StatusCode, reasonErr(broker.ReasonImageNotFound, "%s/%s:%s does not exist (or is hidden from this credential)", t.host, t.repo, t.ref)
	}
	return resp.StatusCode, unexpected(resp.StatusCode, "HEAD manifest")
}

// bearerToken logs in at the challenge's realm, as "docker login" would.
func (p *PullProber) bearerToken(ctx context.Context, cred broker.Credential, t probeTarget, params map[string]string) (string, int, error) {
	realm, err := tokenURL(params, t, "repository:"+t.repo+":pull")
	if err != nil {
		return "", 0, err
	}
	resp, err := p.do(ctx, http.MethodGet, realm, http.Header{"Authorization": {basicAuth(cred)}})
	if err != nil {
		return "", 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return "", resp.StatusCode, reasonErr(broker.ReasonTokenRevoked, "the registry rejected the login of %s", cred.Username)
	case http.StatusForbidden:
		return "", resp.StatusCode, p.refusedLogin(ctx, cred, t)
	default:
		return "", resp.StatusCode, unexpected(resp.StatusCode, "token request")
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || (body.Token == "" && body.AccessToken == "") {
		return "", resp.StatusCode, reasonErr(broker.ReasonRegistryUnreachable, "the token realm answered without a token")
	}
	if body.Token != "" {
		return body.Token, resp.StatusCode, nil
	}
	return body.AccessToken, resp.StatusCode, nil
}

// tokenURL is where a challenge sends the login for a token of scope (none
// when empty), refused unless it is http(s) and keeps TLS if the registry
// has it.
func tokenURL(params map[string]string, t probeTarget, scope string) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", reasonErr(broker.ReasonRegistryUnreachable, "the registry's token realm %q is not an http(s) URL", params["realm"])
	}
	if realm.Scheme == "http" && t.scheme == "https" {
		return "", reasonErr(broker.ReasonRegistryUnreachable, "the registry's token realm %s is plain HTTP; credentials are not sent there", realm.Host)
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	realm.RawQuery = q.Encode()
	return realm.String(), nil
}

// refusedLogin names a 403 at the token endpoint: a credential GitHub no
// longer accepts (TOKEN_REVOKED, or whatever GitHub's answer says), or
// else one that may not pull.
func (p *PullProber) refusedLogin(ctx context.Context, cred broker.Credential, t probeTarget) error {
	refused := denied(cred, t)
	if p.cfg.Recheck == nil {
		return refused
	}
	err := p.cfg.Recheck(ctx, cred)
	switch reason := broker.ReasonOf(err); {
	case err == nil:
		return refused
	case reason == broker.ReasonTokenRevoked || reason == broker.ReasonMissingScope || reason == broker.ReasonFineGrainedPAT:
		return reasonErr(reason, "the registry refused the login of %s, and GitHub says: %v", cred.Username, err)
	default:
		return reasonErr(broker.ReasonOf(refused), "the registry refused the login of %s (403), and GitHub could not say why: %v", cred.Username, err)
	}
}

// denied names why a logged-in credential may not pull. ghcr.io lets App
// installation tokens log in and then refuses private pulls: GitHub Packages
// takes only classic PATs.
func denied(cred broker.Credential, t probeTarget) error {
	if cred.Kind == broker.KindGitHubApp {
		return reasonErr(broker.ReasonAppTokenNotAccepted,
			"the registry accepted the App installation token at login but denied pulling %s/%s; GitHub Packages accepts only classic PATs for private pulls", t.host, t.repo)
	}
	return reasonErr(broker.ReasonNoPackageAccess, "%s may not pull %s/%s", cred.Username, t.host, t.repo)
}

type response struct {
	StatusCode int
	Header     http.Header
	body       []byte
}

// do sends one request and reads at most 64 KiB of the answer.
func (p *PullProber) do(ctx context.Context, method, rawURL string, header http.Header) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, reasonErr(broker.ReasonRegistryUnreachable, "bad request URL: %v", err)
	}
	for k, v := range header {
		if v[0] != "" {
			req.Header[k] = v
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, &reasonError{reason: broker.ReasonRegistryUnreachable, temporary: true,
			msg: fmt.Sprintf("%s %s: %v", method, req.URL.Redacted(), errors.Unwrap(err))}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, &reasonError{reason: broker.ReasonRegistryUnreachable, temporary: true, msg: "read answer: " + err.Error()}
	}
	return &response{StatusCode: resp.StatusCode, Header: resp.Header, body: body}, nil
}

// reasonError is a probe step's failure before Probe wraps it in an *Error.
type reasonError struct {
	reason    broker.Reason
	temporary bool
	msg       string
}

func (e *reasonError) Error() string         { return e.msg }
func (e *reasonError) Reason() broker.Reason { return e.reason }

func reasonErr(reason broker.Reason, format string, args ...any) error {
	return &reasonError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

func unexpected(status int, step string) error {
	return &reasonError{reason: broker.ReasonRegistryUnreachable, temporary: status >= 500,
		msg: fmt.Sprintf("%s: unexpected HTTP %d", step, status)}
}

func isTemporary(err error) bool {
	var re *reasonError
	return errors.As(err, &re) && re.temporary
}

func basicAuth(cred broker.Credential) string {
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(cred.Username, cred.Token)
	return req.Header.Get("Authorization")
}

// parseChallenge splits a WWW-Authenticate header such as
// `Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"`
// into its scheme and parameters. Quoted values may contain commas.
func parseChallenge(header string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var value strings.Builder
		if strings.HasPrefix(after, `"`) {
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				value.WriteByte(after[i])
			}
			after = after[min(i+1, len(after)):]
		} else {
			v, _, _ := strings.Cut(after, ",")
			value.WriteString(strings.TrimSpace(v))
			after = after[len(v):]
		}
		params[key] = value.String()
		rest = strings.TrimLeft(after, ", ")
	}
	return scheme, params
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
