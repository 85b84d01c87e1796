// Package server assembles gatehouse's serving process from its parts: the
// user directory, the decision core, the Envoy ext_authz gRPC service, the
// gRPC health service and the ops HTTP listener, and runs them until its
// context is cancelled.
//
// Start-up and shutdown follow what an orchestrator expects of an
// authorisation service on the request path:
//   - configuration problems are refused before anything listens, but a Redis
//     that is down at start is not one: the service starts, says so, answers
//     503 decisions (fail closed) and recovers when Redis comes back, because
//     refusing to start would turn a Redis blip into a crash loop;
//   - on shutdown, health turns NOT_SERVING and /readyz 503 first, so that
//     proxies and load balancers stop sending work, then the gRPC server
//     stops gracefully within a bound, after which remaining calls are cut.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/telemetry"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// AuthorizationService is the gRPC service name health reports on, besides "".
const AuthorizationService = "envoy.service.auth.v3.Authorization"

// gRPC transport settings. Envoy multiplexes every check of a worker over
// few long-lived HTTP/2 connections, so the stream bound is per connection
// and generous. The message size limit and the idle-connection limit are
// settings (GATEHOUSE_GRPC_MAX_RECV_SIZE, GATEHOUSE_GRPC_MAX_CONNECTION_IDLE).
const (
	maxConcurrentStreams = 1024
	// The server pings a connection that has been silent for keepaliveTime
	// and closes it when the ping is not answered within keepaliveTimeout:
	// peers that vanished (a node gone, a dropped NAT entry) are noticed.
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
	// keepaliveMinTime is the shortest ping interval a client may use, with
	// or without a request in flight (Envoy's connection_keepalive pings
	// idle pooled connections); a client that pings more often is sent a
	// GOAWAY (too_many_pings). 5s accepts every interval Envoy is usually
	// given (the example uses 30s) and still bounds a ping flood.
	keepaliveMinTime  = 5 * time.Second
	connectionTimeout = 10 * time.Second
)

// streamWorkers is the number of goroutines grpc-go keeps to serve streams:
// enough for the checks in flight (preempted, or waiting on Redis), not
// only one per CPU: with 64 checks in flight on 2 CPUs, 16 workers took
// 70% of the streams. An idle worker costs its stack, a few KiB.
func streamWorkers() uint32 {
	return uint32(max(64, 16*runtime.GOMAXPROCS(0)))
}

// Options supplies what a Config cannot describe.
type Options struct {
	// Directory, when set, replaces the directory the Config describes
	// (serve --dev's demo users, tests). The server does not close it.
	Directory userstore.Directory
	// DirectoryName describes Directory in logs and /readyz?verbose.
	DirectoryName string
	// Now is the clock of the decision core (nil: time.Now).
	Now func() time.Time
	// Build labels gatehouse_build_info and the spans' service.version.
	Build telemetry.BuildInfo
	// TracerProvider, when set, receives the spans instead of the OTLP
	// exporter GATEHOUSE_OTEL_ENDPOINT describes (tests). The server does
	// not shut it down.
	TracerProvider trace.TracerProvider

	// metrics is set by New: newDirectory instruments the Redis layers
	// with it (Metrics.ObserveLookup, Metrics.Redis; both accept nil).
	metrics *telemetry.Metrics
	// reloads is set by New: newDirectory registers the users file with it.
	reloads *reloader
	// reloadCheckInterval replaces the periodic check's interval (tests).
	reloadCheckInterval time.Duration
}

// Server is one gatehouse serving process. Create it with New, which binds
// the listeners, then call Serve.
type Server struct {
	cfg    Config
	log    *slog.Logger
	grpc   *grpc.Server
	health *health.Server
	ops    *http.Server

	grpcLn, opsLn net.Listener
	// fwd serves HTTP forward-auth on fwdLn; both nil when disabled.
	fwd   *http.Server
	fwdLn net.Listener
	dir   *directory
	// metrics is served on the ops listener's /metrics.
	metrics *telemetry.Metrics
	// tp is the OTLP tracer provider the server created (nil when tracing
	// is off or the provider was supplied); closeAll flushes it.
	tp *sdktrace.TracerProvider
	// routes names the default route table, for the start-up log.
	routes string
	// tls serves the gRPC and forward-auth listeners' certificate (nil:
	// plain TCP); reloads keeps it, the routes file and the users file
	// current.
	tls     *serverTLS
	reloads *reloader

	// serving is true between the start of Serve and the start of shutdown:
	// it is /readyz.
	serving atomic.Bool
	started atomic.Bool
}

// New builds a Server from cfg and binds its listeners, so that the bound
// addresses (for ":0") are known before Serve. It validates cfg and returns a
// one-line error naming the first problem (a *ConfigError for a field of
// cfg); a Redis that cannot be reached is not an error. On error nothing is
// left open.
func New(ctx context.Context, cfg Config, logger *slog.Logger, opts Options) (_ *Server, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	jwt := cfg.JWT
	s := &Server{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()

	s.metrics = telemetry.NewMetrics(opts.Build)
	opts.metrics = s.metrics
	s.reloads = newReloader(logger, s.metrics.Registry(), opts.reloadCheckInterval)
	opts.reloads = s.reloads
	tp := opts.TracerProvider
	if tp == nil && cfg.OTelEndpoint != "" {
		s.tp, err = telemetry.NewTracerProvider(ctx, telemetry.TracingConfig{
			Endpoint:    cfg.OTelEndpoint,
			Insecure:    cfg.OTelInsecure,
			SampleRatio: cfg.OTelSampleRatio,
			Version:     opts.Build.Version,
		})
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_OTEL_ENDPOINT: %w", err)
		}
		tp = s.tp
	}
	tracer := telemetry.Tracer(tp) // nil: tracing off

	var policy authz.Policy
	if isRoutesFile(cfg.Routes) {
		// A routes file is reloaded when it changes.
		live := &livePolicy{}
		if err := s.reloads.add(live.reloadable(cfg.Routes)); err != nil {
			return nil, err
		}
		policy = live
		s.routes = live.cur.Load().Default().Name()
	} else {
		set, err := routes.Resolve(cfg.Routes)
		if err != nil {
			return nil, err
		}
		policy = set
		s.routes = set.Default().Name()
	}
	var grpcCreds []grpc.ServerOption
	if cfg.TLSCertFile != "" {
		s.tls = newServerTLS(cfg, opts.Now)
		if err := s.reloads.add(s.tls.reloadable()); err != nil {
			return nil, err
		}
		grpcCreds = append(grpcCreds, grpc.Creds(credentials.NewTLS(s.tls.config("h2"))))
	}
	s.dir, err = newDirectory(ctx, cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	keyFiles, err := readKeyFiles(cfg)
	if err != nil {
		return nil, err
	}
	if keyFiles.app != nil {
		jwt.Secret, jwt.Keys = nil, keyFiles.app
	}
	if keyFiles.addons != nil {
		cfg.Addons.Secret, cfg.Addons.Keys = nil, keyFiles.addons
	}
	introspector, subjects, err := s.newIntrospection(cfg, logger, opts)
	if err != nil {
		return nil, err
	}
	az, err := authz.New(authz.Options{
		Introspector:      introspector,
		Subjects:          subjects,
		JWT:               jwt,
		Directory:         telemetry.TraceDirectory(s.dir.Directory, tracer),
		Policy:            policy,
		UserIDFormat:      cfg.UserIDFormat,
		CheckApplications: cfg.CheckApplications,
		Profile:           cfg.MeetProfile,
		Addons:            cfg.Addons,
		ScopesPrefix:      cfg.ScopesPrefix,
		TokenCacheSize:    zeroMeansNone(cfg.TokenCacheSize),
		Now:               opts.Now,
	})
	if err != nil {
		return nil, err
	}
	if cfg.JWTKeysFile != "" || cfg.AddonsKeysFile != "" {
		// The keys are reloaded with the other files; a change drops the
		// cached verified tokens (authz.SetKeys).
		if err := s.reloads.add(keysReloadable(az, cfg)); err != nil {
			return nil, err
		}
	}

	// Every adapter takes the same instrumented Decider: decision ids,
	// metrics and spans are protocol-independent.
	decider := telemetry.NewDecider(az, telemetry.Options{Metrics: s.metrics, Tracer: tracer})
	checks := extauthz.New(decider, extauthz.Options{
		Realm:          cfg.Realm,
		UserIDHeader:   cfg.HeaderUserID,
		ClientIDHeader: cfg.HeaderClientID,
		ScopeHeader:    cfg.HeaderScope,
		Logger:         logger,
		// Envoy's access logs and rate limits read dynamic_metadata; it is
		// about 1% of a check's CPU (docs/performance.md).
		OmitDynamicMetadata: cfg.OmitDynamicMetadata,
		// Below debug, decision lines share a per-second budget.
		LogLinesPerSecond: zeroMeansNone(cfg.LogRate),
	})
	// The Authorization service reads each CheckRequest with checkwire:
	// only what the decision, the log line and the trace use is decoded.
	s.grpc = checks.NewGRPCServer(append(grpcCreds,
		grpc.ChainUnaryInterceptor(extauthz.UnaryRecoverer(logger)),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		// Far above any CheckRequest a proxy sends (a forwarded body
		// included): a request gRPC refuses for its size is answered with
		// RESOURCE_EXHAUSTED before gatehouse sees it, and Envoy's
		// failure_mode_allow would let such an error through.
		grpc.MaxRecvMsgSize(cfg.GRPCMaxRecvSize),
		grpc.ConnectionTimeout(connectionTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    keepaliveTime,
			Timeout: keepaliveTimeout,
			// A connection without a stream for this long is sent a
			// graceful GOAWAY (the first one still accepts streams the
			// client sent before reading it), then closed, even when the
			// client ignores the GOAWAY: an idle connection otherwise holds
			// three goroutines and its buffers for ever. A busy Envoy
			// connection is never idle; an idle one is re-dialled on the
			// next request, which does not fail. No MaxConnectionAge (and
			// so no MaxConnectionAgeGrace): ageing out busy connections
			// would only make Envoy re-dial.
			MaxConnectionIdle: cfg.GRPCMaxConnectionIdle,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		// Reused stream goroutines keep their grown stacks: without them
		// every check starts a fresh goroutine whose stack is grown and
		// copied while decoding the CheckRequest (~15% of the server's
		// CPU in profiles under load, docs/performance.md). When every
		// worker is busy grpc-go starts a goroutine as before, so this
		// bounds nothing.
		grpc.NumStreamWorkers(streamWorkers()),
	)...)
	s.health = health.NewServer()
	// NOT_SERVING until Serve runs: a health check that reaches a server
	// still starting must not send it work.
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if cfg.GRPCReflection {
		reflection.Register(s.grpc)
	}

	s.ops = &http.Server{
		Handler:           s.opsHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	var lc net.ListenConfig
	if s.grpcLn, err = lc.Listen(ctx, "tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if s.opsLn, err = lc.Listen(ctx, "tcp", cfg.OpsAddr); err != nil {
		return nil, fmt.Errorf("ops listener: %w", err)
	}
	if cfg.HTTPAddr != "" {
		s.fwd = forwardAuthServer(cfg, decider, logger)
		if s.tls != nil {
			// HTTP/1.1 for nginx, Traefik and Caddy; h2 for Envoy's
			// http_service over TLS.
			s.fwd.TLSConfig = s.tls.config("h2", "http/1.1")
		}
		if s.fwdLn, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("forward-auth listener: %w", err)
		}
	}
	if shortestKey(jwt) < minSecretLen(jwt.Algorithm) {
		logger.Warn("JWT secret is shorter than the hash output; RFC 7518 asks for at least as many bytes",
			"algorithm", jwt.Algorithm, "min_bytes", minSecretLen(jwt.Algorithm))
	}
	if a := cfg.Addons; shortestKey(a) > 0 && shortestKey(a) < minSecretLen(a.Algorithm) {
		logger.Warn("add-on JWT secret is shorter than the hash output; RFC 7518 asks for at least as many bytes",
			"algorithm", a.Algorithm, "min_bytes", minSecretLen(a.Algorithm))
	}
	return s, nil
}

// zeroMeansNone maps a setting where 0 means none (GATEHOUSE_TOKEN_CACHE_SIZE,
// GATEHOUSE_LOG_RATE) to an option where 0 selects the default and a
// negative value means none.
func zeroMeansNone(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// GRPCAddr returns the bound ext_authz gRPC address.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLn.Addr() }

// OpsAddr returns the bound ops HTTP address.
func (s *Server) OpsAddr() net.Addr { return s.opsLn.Addr() }

// HTTPAddr returns the bound forward-auth address, or nil when disabled.
func (s *Server) HTTPAddr() net.Addr {
	if s.fwdLn == nil {
		return nil
	}
	return s.fwdLn.Addr()
}

// Serve serves until ctx is cancelled or a listener fails, then shuts down:
// health NOT_SERVING and /readyz 503, a graceful gRPC stop bounded by the
// configured shutdown timeout, then the listeners and the directory are
// closed. It returns nil after a shutdown caused by ctx, and the listener's
// error otherwise. Serve may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("server: Serve called twice")
	}
	return s.serve(ctx)
}

func (s *Server) serve(ctx context.Context) error {
	errc := make(chan error, 3)
	pending := 2
	go func() {
		if err := s.grpc.Serve(s.grpcLn); err != nil {
			errc <- fmt.Errorf("gRPC server: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := s.ops.Serve(s.opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("ops server: %w", err)
			return
		}
		errc <- nil
	}()
	if s.fwd != nil {
		pending++
		go func() {
			serve := s.fwd.Serve
			if s.tls != nil {
				// The certificate comes from TLSConfig, reloaded.
				serve = func(ln net.Listener) error { return s.fwd.ServeTLS(ln, "", "") }
			}
			if err := serve(s.fwdLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("forward-auth server: %w", err)
				return
			}
			errc <- nil
		}()
	}
	s.dir.start(ctx)
	s.reloads.start(ctx)

	s.serving.Store(true)
	s.setHealth(healthpb.HealthCheckResponse_SERVING)
	httpAddr := "disabled"
	if a := s.HTTPAddr(); a != nil {
		httpAddr = a.String()
	}
	s.log.Info("listening", "grpc", s.GRPCAddr().String(), "ops", s.OpsAddr().String(), "http", httpAddr,
		"tls", s.tlsMode(), "directory", s.dir.describe, "routes", s.routes, "check_applications", s.cfg.CheckApplications,
		"meet_profile", s.cfg.MeetProfile.String(), "addon_tokens", len(s.cfg.Addons.Secret) > 0,
		"reflection", s.cfg.GRPCReflection)

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "cause", context.Cause(ctx).Error(), "drain", s.cfg.DrainPeriod.String(),
			"timeout", s.cfg.ShutdownTimeout.String())
	case runErr = <-errc:
		pending--
		if runErr == nil {
			runErr = errors.New("server: a listener stopped unexpectedly")
		}
		s.log.Error("listener failed; shutting down", "error", runErr.Error())
	}
	s.shutdown(ctx)
	for ; pending > 0; pending-- {
		if err := <-errc; err != nil && runErr == nil {
			runErr = err
		}
	}
	return runErr
}

// setHealth sets the status of both reported services.
func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(AuthorizationService, st)
}

// shutdown stops taking work, drains, and closes everything.
func (s *Server) shutdown(ctx context.Context) {
	s.serving.Store(false)
	// Shutdown sets every service NOT_SERVING, tells Watch streams, and
	// ignores later changes.
	s.health.Shutdown()
	s.drain()

	// The forward-auth listener drains alongside gRPC, within the same
	// bound: it stops accepting at once and lets in-flight checks finish.
	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		if s.fwd == nil {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := s.fwd.Shutdown(fctx); err != nil {
			s.fwd.Close()
		}
	}()

	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		s.log.Warn("graceful stop timed out; closing the remaining connections",
			"timeout", s.cfg.ShutdownTimeout.String())
		s.grpc.Stop()
		<-done
	}
	<-fwdDone

	// The ops listener outlives the gRPC drain so that /readyz says 503 all
	// along; a short bound is enough for its tiny responses.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.ops.Shutdown(octx); err != nil {
		s.ops.Close()
	}
	s.closeAll()
	s.log.Info("stopped")
}

// closeAll releases what New acquired. It is safe on a partly built Server
// and idempotent.
func (s *Server) closeAll() {
	if s.grpc != nil {
		s.grpc.Stop() // no-op after GracefulStop; closes grpcLn
	}
	if s.grpcLn != nil {
		s.grpcLn.Close()
	}
	if s.ops != nil {
		s.ops.Close()
	}
	if s.opsLn != nil {
		s.opsLn.Close()
	}
	if s.fwd != nil {
		s.fwd.Close()
	}
	if s.fwdLn != nil {
		s.fwdLn.Close()
	}
	if s.reloads != nil {
		s.reloads.close()
	}
	if s.dir != nil {
		if err := s.dir.close(); err != nil {
			s.log.Warn("closing the directory", "error", err.Error())
		}
	}
	if s.tp != nil {
		// Flush the spans still batched; a collector that is down must not
		// hold the exit up for long.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.tp.Shutdown(ctx); err != nil {
			s.log.Warn("flushing traces", "error", err.Error())
		}
		s.tp = nil
	}
}

// drain keeps serving for the drain period after health turned NOT_SERVING:
// the proxies learn that this server is going away from its health, from
// DNS or from the EndpointSlice, and meanwhile still open new connections to
// it. Stopping at once would refuse those connections, and each refused
// check becomes the proxy's status_on_error; during the drain they are
// answered. The forward-auth listener closes each connection after its
// response, so that a proxy re-dials, and finds the pods still serving.
func (s *Server) drain() {
	if s.cfg.DrainPeriod <= 0 {
		return
	}
	s.log.Info("draining: NOT_SERVING, still answering checks", "drain", s.cfg.DrainPeriod.String())
	if s.fwd != nil {
		s.fwd.SetKeepAlivesEnabled(false)
	}
	time.Sleep(s.cfg.DrainPeriod)
}

// tlsMode describes the listeners' TLS for the start-up log.
func (s *Server) tlsMode() string {
	switch {
	case s.tls == nil:
		return "off"
	case s.cfg.TLSClientCAFile != "":
		return "mutual"
	default:
		return "on"
	}
}

// Reload checks the reloaded files (routes file, users file, TLS
// certificate) now rather than at their next change or the periodic check,
// retrying files refused before: cmd/gatehouse calls it on SIGHUP. It does
// not wait for the check.
func (s *Server) Reload() { s.reloads.request(true) }

// Run builds a Server with New and serves until ctx is cancelled.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, opts Options) error {
	s, err := New(ctx, cfg, logger, opts)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}
