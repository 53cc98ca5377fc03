package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/credbroker/credbroker/auth"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// Config says where and how to listen.
type Config struct {
	// GRPCAddr and HTTPAddr are host:port; port 0 picks a free port.
	GRPCAddr string
	HTTPAddr string
	// ShutdownTimeout bounds a graceful shutdown; calls still running after
	// it are cancelled.
	ShutdownTimeout time.Duration
	// Handlers are further HTTP endpoints by ServeMux pattern, such as
	// "POST /webhooks/github". Their request bodies are limited to 1 MiB.
	Handlers map[string]http.Handler
	// Guard, if set, authenticates and authorizes every API call (health,
	// reflection and the HTTP endpoints aside).
	Guard *Guard
	// TLS, if set, serves both listeners over TLS; with ClientCAs and
	// ClientAuth set, callers may present client certificates.
	TLS *tls.Config
}

// MaxRequestBytes bounds a request, over gRPC and over REST.
const MaxRequestBytes = 1 << 20

// Services are the API implementations. A nil service answers every call
// with Unimplemented.
type Services struct {
	Tenants     credbrokerv1.TenantServiceServer
	Credentials credbrokerv1.CredentialServiceServer
	Exchange    credbrokerv1.PullCredentialServiceServer
	Images      credbrokerv1.ImageServiceServer
	Events      credbrokerv1.EventServiceServer
}

// ReadyFunc reports whether the server can do useful work (its store
// answers, for example); /readyz fails while it returns an error.
type ReadyFunc func(context.Context) error

// Server is a running pair of listeners. Create it with New, then Run it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	http    *http.Server
	grpcLis net.Listener
	httpLis net.Listener
	// inProcess serves the REST gateway's calls: the same services behind
	// the same interceptors, called in memory — no listener, no HTTP/2
	// framing, no second encoding of each message, which had cost REST
	// more than the whole of a gRPC call. What only the HTTP server saw of
	// the caller reaches the Guard in the gateway's context (forward.go).
	inProcess *inprocgrpc.Channel
	stopping  atomic.Bool
}

// New listens on both addresses and assembles the servers. metrics receives
// the gRPC server metrics and is served on /metrics.
func New(cfg Config, svc Services, ready ReadyFunc, metrics *prometheus.Registry, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, health: health.NewServer()}
	var err error
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		_ = s.grpcLis.Close()
		return nil, fmt.Errorf("listen HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	if cfg.TLS != nil {
		s.httpLis = tls.NewListener(s.httpLis, cfg.TLS)
	}
	if err := s.buildGRPC(svc, metrics); err != nil {
		s.closeListeners()
		return nil, err
	}
	if err := s.buildHTTP(ready, metrics); err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, nil
}

// GRPCAddr is the address the gRPC listener is bound to.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the address the HTTP listener is bound to.
func (s *Server) HTTPAddr() net.Addr { return s.httpLis.Addr() }

func (s *Server) buildGRPC(svc Services, metrics *prometheus.Registry) error {
	serverMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	if err := metrics.Register(serverMetrics); err != nil {
		return fmt.Errorf("register gRPC metrics: %w", err)
	}
	// Only the finish of a call is logged, and never its payload: requests
	// carry PATs. Successful calls log at debug: the backend polls status,
	// and a line per poll would bury the failures.
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		s.log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(code codes.Code) logging.Level {
			if code == codes.OK {
				return logging.LevelDebug
			}
			return logging.DefaultServerCodeToLevel(code)
		}),
	}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		s.log.ErrorContext(ctx, "panic in handler", slog.Any("panic", p))
		return status.Error(codes.Internal, "internal error")
	})
	unary := []grpc.UnaryServerInterceptor{
		serverMetrics.UnaryServerInterceptor(),
		logging.UnaryServerInterceptor(logger, logOpts...),
		recovery.UnaryServerInterceptor(recoverOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		serverMetrics.StreamServerInterceptor(),
		logging.StreamServerInterceptor(logger, logOpts...),
		recovery.StreamServerInterceptor(recoverOpt),
	}
	if g := s.cfg.Guard; g != nil {
		unary, stream = append(unary, g.Unary), append(stream, g.Stream)
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		// Calls run on long-lived workers, whose stacks have grown to what
		// the interceptor chain needs, rather than each on a new goroutine
		// that grows its stack again (a tenth of the CPU of a call).
		grpc.NumStreamWorkers(uint32(goruntime.GOMAXPROCS(0))),
	}
	// The listener's server, with TLS when configured, and the REST
	// gateway's channel in memory, where there is nothing to encrypt: the
	// same services behind the same interceptors.
	register := func(srv grpc.ServiceRegistrar) {
		credbrokerv1.RegisterTenantServiceServer(srv, orDefault[credbrokerv1.TenantServiceServer](svc.Tenants, credbrokerv1.UnimplementedTenantServiceServer{}))
		credbrokerv1.RegisterCredentialServiceServer(srv, orDefault[credbrokerv1.CredentialServiceServer](svc.Credentials, credbrokerv1.UnimplementedCredentialServiceServer{}))
		credbrokerv1.RegisterImageServiceServer(srv, orDefault[credbrokerv1.ImageServiceServer](svc.Images, credbrokerv1.UnimplementedImageServiceServer{}))
		credbrokerv1.RegisterEventServiceServer(srv, orDefault[credbrokerv1.EventServiceServer](svc.Events, credbrokerv1.UnimplementedEventServiceServer{}))
		credbrokerv1.RegisterPullCredentialServiceServer(srv, orDefault[credbrokerv1.PullCredentialServiceServer](svc.Exchange, credbrokerv1.UnimplementedPullCredentialServiceServer{}))
	}
	s.inProcess = new(inprocgrpc.Channel).WithServerUnaryInterceptor(chainUnary(unary)).WithServerStreamInterceptor(chainStream(stream))
	register(s.inProcess)
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	register(s.grpc)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	serverMetrics.InitializeMetrics(s.grpc)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return nil
}

func orDefault[T any](v, def T) T {
	if any(v) == nil {
		return def
	}
	return v
}

func (s *Server) buildHTTP(ready ReadyFunc, metrics *prometheus.Registry) error {
	gw := runtime.NewServeMux(
		// Unknown JSON fields are an error, not silently dropped: a typo in
		// a field name must not register a tenant without that field.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
	)
	ctx := context.Background()
	for _, err := range []error{
		credbrokerv1.RegisterTenantServiceHandlerClient(ctx, gw, credbrokerv1.NewTenantServiceClient(s.inProcess)),
		credbrokerv1.RegisterCredentialServiceHandlerClient(ctx, gw, credbrokerv1.NewCredentialServiceClient(s.inProcess)),
		credbrokerv1.RegisterImageServiceHandlerClient(ctx, gw, credbrokerv1.NewImageServiceClient(s.inProcess)),
		credbrokerv1.RegisterEventServiceHandlerClient(ctx, gw, credbrokerv1.NewEventServiceClient(s.inProcess)),
		credbrokerv1.RegisterPullCredentialServiceHandlerClient(ctx, gw, credbrokerv1.NewPullCredentialServiceClient(s.inProcess)),
	} {
		if err != nil {
			return fmt.Errorf("register gateway handler: %w", err)
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/", http.MaxBytesHandler(forwardCaller(gw), MaxRequestBytes))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.stopping.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := ready(r.Context()); err != nil {
			// Anyone may ask: the answer says no more than not ready.
			s.log.WarnContext(r.Context(), "not ready", slog.Any("error", err))
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	metricsHandler := promhttp.HandlerFor(metrics, promhttp.HandlerOpts{Registry: metrics})
	if g := s.cfg.Guard; g != nil {
		// Tenant ids are labels: they are nobody's business but the platform's.
		metricsHandler = g.RequireRole(auth.RoleMetricsReader, metricsHandler)
	}
	mux.Handle("GET /metrics", metricsHandler)
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(credbrokerv1.OpenAPI())
	})
	for pattern, h := range s.cfg.Handlers {
		mux.Handle(pattern, http.MaxBytesHandler(h, MaxRequestBytes))
	}
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// Run serves until ctx is cancelled, then shuts down gracefully: readiness
// and gRPC health turn NOT_SERVING at once, in-flight calls get up to
// Config.ShutdownTimeout to finish, and whatever still runs is cancelled.
// It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() {
		if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	s.log.Info("serving", slog.String("grpc", s.GRPCAddr().String()), slog.String("http", s.HTTPAddr().String()))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		s.log.Error("listener failed", slog.Any("error", serveErr))
	}
	s.shutdown()
	return serveErr
}

func (s *Server) shutdown() {
	start := time.Now()
	s.stopping.Store(true)
	s.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
	})
	wg.Go(func() {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
		}
	})
	wg.Wait()
	s.log.Info("shutdown complete", slog.Duration("took", time.Since(start)), slog.Bool("forced", ctx.Err() != nil))
}

func (s *Server) closeListeners() {
	_ = s.grpcLis.Close()
	_ = s.httpLis.Close()
}

// chainUnary is interceptors as one, the first outermost, as
// grpc.ChainUnaryInterceptor makes them for a server.
func chainUnary(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var next func(i int) grpc.UnaryHandler
		next = func(i int) grpc.UnaryHandler {
			if i == len(interceptors) {
				return handler
			}
			return func(ctx context.Context, req any) (any, error) { return interceptors[i](ctx, req, info, next(i+1)) }
		}
		return next(0)(ctx, req)
	}
}

// chainStream is chainUnary for streams.
func chainStream(interceptors []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		var next func(i int) grpc.StreamHandler
		next = func(i int) grpc.StreamHandler {
			if i == len(interceptors) {
				return handler
			}
			return func(srv any, ss grpc.ServerStream) error { return interceptors[i](srv, ss, info, next(i+1)) }
		}
		return next(0)(srv, ss)
	}
}
