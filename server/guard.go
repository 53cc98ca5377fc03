package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/api"
	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
)

// CallerAuthenticator is what the Guard asks who is calling: it decides
// (auth.Chain is one), where an auth.Authenticator may pass the request on.
type CallerAuthenticator interface {
	Authenticate(ctx context.Context, req auth.Request) (auth.Identity, error)
}

// GuardConfig configures authentication, authorization, limits and the
// audit trail of the API.
type GuardConfig struct {
	Authenticator CallerAuthenticator
	Policy        *auth.Policy
	// Audit keeps a record of every credential issuance and change; the
	// log gets a line for each either way.
	Audit broker.AuditStore
	// Timeout bounds every unary call; 30s when zero.
	Timeout time.Duration
	// Clock dates audit records and refills limits; the real clock when nil.
	Clock clock.PassiveClock
	// PerPeer limits the calls of each self-authenticated method (the
	// credential exchange) per caller address: nobody is known before the
	// method checks the credential in the request, and one caller must not
	// take the method's whole capacity. Zero: no limit.
	PerPeer auth.Limit
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
	limits  *limits

	streamsMu sync.Mutex
	streams   map[string]int // open streams by caller name

	refusals *rate.Limiter // log lines for refused credentials
	unlogged atomic.Int64  // refusals not logged since the last line
}

// MaxStreamsPerCaller caps the streams (WatchEvents) one identity holds
// open: each polls the event log, so a caller that opens thousands would
// make the store do the work of thousands.
const MaxStreamsPerCaller = 8

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig, log *slog.Logger) *Guard {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Guard{cfg: cfg, methods: api.Methods(), log: log, limits: newLimits(cfg.Clock), streams: map[string]int{},
		refusals: rate.NewLimiter(5, 20)}
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
	roles  []string
	peer   string
}

// authenticate establishes who calls method.
func (g *Guard) authenticate(ctx context.Context, method string) (*call, error) {
	rule, known := g.methods[method]
	if !known {
		return nil, status.Error(codes.PermissionDenied, "permission denied")
	}
	req, addr := g.caller(ctx)
	req.Peer = peerHost(addr)
	id, err := g.cfg.Authenticator.Authenticate(ctx, req)
	if err != nil {
		// A flood of bad credentials must not become a flood of log lines:
		// a few a second are written, with a count of those left out.
		if g.refusals.AllowN(g.cfg.Clock.Now(), 1) {
			g.log.InfoContext(ctx, "unauthenticated call", slog.String("method", method), slog.String("peer", addr), slog.Any("error", err),
				slog.Int64("notLoggedSinceLast", g.unlogged.Swap(0)))
		} else {
			g.unlogged.Add(1)
		}
		if errors.Is(err, auth.ErrBusy) {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		return nil, status.Error(codes.Unauthenticated, "unauthenticated: present a client certificate or a bearer token credbroker accepts")
	}
	return &call{method: method, rule: rule, id: id, roles: g.cfg.Policy.Roles(id), peer: addr}, nil
}

// peerHost is the host of a caller's address ("" when unknown): the
// ports of one machine's connections are one caller.
func peerHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// perPeerExhausted refuses a self-authenticated call beyond the caller
// address's limit, logged as refusals are (a few lines a second).
func (g *Guard) perPeerExhausted(ctx context.Context, method, peer string) error {
	if g.refusals.AllowN(g.cfg.Clock.Now(), 1) {
		g.log.InfoContext(ctx, "too many calls from one address", slog.String("method", method), slog.String("peer", peer),
			slog.Int64("notLoggedSinceLast", g.unlogged.Swap(0)))
	} else {
		g.unlogged.Add(1)
	}
	msg := "too many calls of " + method + " from " + peer + "; slow down"
	st, err := status.New(codes.ResourceExhausted, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if err != nil {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st.Err()
}

// authorize decides from the request alone whether the caller may make it.
func (g *Guard) authorize(ctx context.Context, c *call, req any) error {
	tenant := c.rule.TenantOf(req)
	if !auth.Allowed(c.roles, c.rule.Access, tenant) {
		g.log.InfoContext(ctx, "permission denied", slog.String("caller", c.id.Name), slog.String("method", c.method), slog.String("tenant", tenant))
		return status.Error(codes.PermissionDenied, "permission denied")
	}
	if fields := c.rule.ForbiddenFields(c.roles, req); len(fields) > 0 {
		g.log.InfoContext(ctx, "permission denied", slog.String("caller", c.id.Name), slog.String("method", c.method),
			slog.String("tenant", tenant), slog.Any("fields", fields))
		return status.Errorf(codes.PermissionDenied, "permission denied: only an admin may change %s", strings.Join(fields, ", "))
	}
	if !g.limits.allow(c.method, c.id.Name, c.rule.Limit) {
		return status.Error(codes.ResourceExhausted, "too many calls of "+c.method+"; slow down")
	}
	return nil
}

// Unary is the unary server interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if public(info.FullMethod) {
		return handler(ctx, req)
	}
	if g.methods[info.FullMethod].Access == auth.SelfAuthenticated {
		_, addr := g.caller(ctx)
		peer := peerHost(addr)
		if !g.limits.allow(info.FullMethod, "peer:"+peer, g.cfg.PerPeer) {
			return nil, g.perPeerExhausted(ctx, info.FullMethod, peer)
		}
		ctx, cancel := context.WithTimeout(auth.WithPeer(ctx, peer), g.cfg.Timeout)
		defer cancel()
		return handler(ctx, req)
	}
	c, err := g.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := g.authorize(ctx, c, req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(api.WithCaller(ctx, slices.Contains(c.roles, auth.RoleAdmin)), g.cfg.Timeout)
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
	if !g.openStream(c.id.Name) {
		return status.Errorf(codes.ResourceExhausted, "%d streams open already; close one first", MaxStreamsPerCaller)
	}
	defer g.closeStream(c.id.Name)
	return handler(srv, &guardedStream{ServerStream: ss, guard: g, call: c})
}

func (g *Guard) openStream(caller string) bool {
	g.streamsMu.Lock()
	defer g.streamsMu.Unlock()
	if g.streams[caller] >= MaxStreamsPerCaller {
		return false
	}
	g.streams[caller]++
	return true
}

func (g *Guard) closeStream(caller string) {
	g.streamsMu.Lock()
	defer g.streamsMu.Unlock()
	if g.streams[caller]--; g.streams[caller] == 0 {
		delete(g.streams, caller)
	}
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

// RequireRole serves h to callers holding role (or admin) only: for plain
// HTTP endpoints outside the API, such as /metrics, whose labels name
// tenants. The caller presents a bearer token or a client certificate, as
// to the API.
func (g *Guard) RequireRole(role string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := auth.Request{Peer: peerHost(r.RemoteAddr)}
		if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "bearer") {
			req.BearerToken = strings.TrimSpace(token)
		}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			req.PeerCertificates = r.TLS.VerifiedChains[0]
		}
		id, err := g.cfg.Authenticator.Authenticate(r.Context(), req)
		if err != nil {
			http.Error(w, "unauthenticated: present a bearer token or client certificate credbroker accepts", http.StatusUnauthorized)
			return
		}
		roles := g.cfg.Policy.Roles(id)
		if !slices.Contains(roles, role) && !slices.Contains(roles, auth.RoleAdmin) {
			g.log.InfoContext(r.Context(), "permission denied", slog.String("caller", id.Name), slog.String("path", r.URL.Path))
			http.Error(w, "permission denied", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
