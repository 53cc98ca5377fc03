package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
)

// Authenticator is what the Guard asks who is calling; auth.Chain is one.
type Authenticator interface {
	Authenticate(ctx context.Context, req auth.Request) (auth.Identity, error)
}

// GuardConfig configures authentication, authorization, limits and the
// audit trail of the API.
type GuardConfig struct {
	Authenticator Authenticator
	Policy        *auth.Policy
	// Audit keeps a record of every credential issuance and change; the
	// log gets a line for each either way.
	Audit broker.AuditStore
	// Timeout bounds every unary call; 30s when zero.
	Timeout time.Duration
	// Limits are per-identity rates of the expensive methods (by full
	// method name); DefaultLimits when nil.
	Limits map[string]Limit
}

// Limit is a token bucket: Rate calls a second, Burst at once.
type Limit struct {
	Rate  rate.Limit
	Burst int
}

// DefaultLimits throttle a caller's refreshes (each is a call to GitHub and
// a registry) and pod validations (the admission hot path, cheap, but not
// free).
func DefaultLimits() map[string]Limit {
	return map[string]Limit{
		"/credbroker.v1.CredentialService/RefreshCredential": {Rate: 0.2, Burst: 5},
		"/credbroker.v1.ImageService/ValidatePod":            {Rate: 200, Burst: 400},
	}
}

// Guard decides every API call: who calls (Unauthenticated / 401 when
// nobody can tell), may they (PermissionDenied / 403, decided from the
// request alone, so the answer does not reveal whether a tenant exists),
// not too often (ResourceExhausted / 429), within a deadline, and on the
// record when the call issues a credential or changes a tenant.
type Guard struct {
	cfg     GuardConfig
	methods map[string]auth.Rule
	log     *slog.Logger
	// forwardKey signs what the REST gateway forwards about its caller
	// (client certificate, address): the gateway is a client like any
	// other, and only this process knows the key.
	forwardKey []byte

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by method and caller
}

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig, log *slog.Logger) *Guard {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Limits == nil {
		cfg.Limits = DefaultLimits()
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails since Go 1.24
	return &Guard{cfg: cfg, methods: auth.Methods(), log: log, forwardKey: key, limiters: map[string]*rate.Limiter{}}
}

// Metadata the gateway adds for the gRPC server: the caller's client
// certificate and address, and their signature.
const (
	mdClientCert = "x-credbroker-client-cert"
	mdPeer       = "x-credbroker-peer"
	mdForwardSig = "x-credbroker-forward-sig"
)

func (g *Guard) sign(cert, addr string) string {
	mac := hmac.New(sha256.New, g.forwardKey)
	mac.Write([]byte(cert + "\x00" + addr))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// forward is the gateway's metadata for an HTTP request.
func (g *Guard) forward(_ context.Context, r *http.Request) metadata.MD {
	cert := ""
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert = base64.RawStdEncoding.EncodeToString(r.TLS.VerifiedChains[0][0].Raw)
	}
	return metadata.Pairs(mdClientCert, cert, mdPeer, r.RemoteAddr, mdForwardSig, g.sign(cert, r.RemoteAddr))
}

// dropForwardHeaders keeps HTTP callers from sending the gateway's own
// metadata (grpc-gateway turns Grpc-Metadata-* headers into metadata).
func dropForwardHeaders(key string) (string, bool) {
	if strings.HasPrefix(strings.ToLower(key), "grpc-metadata-x-credbroker-") {
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// caller gathers what the call presents: the bearer token, and the client
// certificate and address — from the TLS connection, or as the gateway
// forwarded them for a REST call.
func (g *Guard) caller(ctx context.Context) (auth.Request, string) {
	var req auth.Request
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
		if tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(tlsInfo.State.VerifiedChains) > 0 {
			req.PeerCertificates = tlsInfo.State.VerifiedChains[0]
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		if scheme, token, ok := strings.Cut(v[0], " "); ok && strings.EqualFold(scheme, "bearer") {
			req.BearerToken = strings.TrimSpace(token)
		}
	}
	if sig := md.Get(mdForwardSig); len(sig) > 0 {
		cert, fwdAddr := first(md.Get(mdClientCert)), first(md.Get(mdPeer))
		if hmac.Equal([]byte(sig[0]), []byte(g.sign(cert, fwdAddr))) {
			addr = fwdAddr
			if der, err := base64.RawStdEncoding.DecodeString(cert); err == nil && cert != "" {
				if c, err := x509.ParseCertificate(der); err == nil {
					req.PeerCertificates = []*x509.Certificate{c}
				}
			}
		}
	}
	return req, addr
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// public methods need no identity: health checks and reflection.
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// call is one call's identity, as the Guard established it.
type call struct {
	method string
	rule   auth.Rule
	id     auth.Identity
	peer   string
}

// authenticate establishes who calls method.
func (g *Guard) authenticate(ctx context.Context, method string) (*call, error) {
	rule, known := g.methods[method]
	if !known {
		return nil, status.Error(codes.PermissionDenied, "permission denied")
	}
	req, addr := g.caller(ctx)
	id, err := g.cfg.Authenticator.Authenticate(ctx, req)
	if err != nil {
		g.log.InfoContext(ctx, "unauthenticated call", slog.String("method", method), slog.String("peer", addr), slog.Any("error", err))
		return nil, status.Error(codes.Unauthenticated, "unauthenticated: present a client certificate or a bearer token credbroker accepts")
	}
	return &call{method: method, rule: rule, id: id, peer: addr}, nil
}

// authorize decides from the request alone whether the caller may make it.
func (g *Guard) authorize(ctx context.Context, c *call, req any) error {
	tenant := c.rule.TenantOf(req)
	if !auth.Allowed(g.cfg.Policy.Roles(c.id), c.rule.Access, tenant) {
		g.log.InfoContext(ctx, "permission denied", slog.String("caller", c.id.Name), slog.String("method", c.method), slog.String("tenant", tenant))
		return status.Error(codes.PermissionDenied, "permission denied")
	}
	if l, ok := g.cfg.Limits[c.method]; ok && !g.limiter(c.method+"\x00"+c.id.Name, l).Allow() {
		return status.Error(codes.ResourceExhausted, "too many calls of "+c.method+"; slow down")
	}
	return nil
}

func (g *Guard) limiter(key string, l Limit) *rate.Limiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	lim := g.limiters[key]
	if lim == nil {
		lim = rate.NewLimiter(l.Rate, l.Burst)
		g.limiters[key] = lim
	}
	return lim
}

// audit records a call that issued a credential or changed a tenant.
func (g *Guard) audit(ctx context.Context, c *call, req, resp any, err error) {
	if !c.rule.Audit {
		return
	}
	rec := broker.AuditRecord{Time: time.Now().UTC(), Caller: c.id.Name, AuthMethod: c.id.Method, TokenSHA256: c.id.TokenHash,
		Peer: c.peer, Method: c.method, TenantID: c.rule.TenantOf(req), Result: status.Code(err).String()}
	if r, ok := resp.(interface{ GetFingerprint() string }); ok && err == nil {
		rec.Fingerprint = r.GetFingerprint()
	}
	g.log.InfoContext(ctx, "audit", slog.String("caller", rec.Caller), slog.String("auth", rec.AuthMethod),
		slog.String("token_sha256", rec.TokenSHA256), slog.String("peer", rec.Peer), slog.String("method", rec.Method),
		slog.String("tenant", rec.TenantID), slog.String("result", rec.Result), slog.String("fingerprint", rec.Fingerprint))
	if g.cfg.Audit != nil {
		if err := g.cfg.Audit.AppendAudit(context.WithoutCancel(ctx), rec); err != nil {
			g.log.ErrorContext(ctx, "store audit record", slog.Any("error", err))
		}
	}
}

// Unary is the unary server interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if public(info.FullMethod) {
		return handler(ctx, req)
	}
	c, err := g.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := g.authorize(ctx, c, req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	resp, err := handler(ctx, req)
	g.audit(ctx, c, req, resp, err)
	return resp, err
}

// Stream is the stream server interceptor. A stream is authorized on its
// first request message, which names the tenant.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if public(info.FullMethod) {
		return handler(srv, ss)
	}
	c, err := g.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &guardedStream{ServerStream: ss, guard: g, call: c})
}

type guardedStream struct {
	grpc.ServerStream
	guard      *Guard
	call       *call
	authorized bool
}

func (s *guardedStream) SendMsg(m any) error {
	if !s.authorized {
		return status.Error(codes.PermissionDenied, "permission denied")
	}
	return s.ServerStream.SendMsg(m)
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !s.authorized {
		if err := s.guard.authorize(s.Context(), s.call, m); err != nil {
			return err
		}
		s.authorized = true
	}
	return nil
}
