package extauthz

import (
	"context"
	"log/slog"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// Default identity header names (DESIGN §4).
const (
	DefaultUserIDHeader   = "x-auth-user-id"
	DefaultClientIDHeader = "x-auth-client-id"
	DefaultScopeHeader    = "x-auth-scope"
)

// Decider is authz.Decider. The Decision's DecisionID, when set, is logged,
// put in dynamic metadata and sent on denies (authz.DecisionIDHeader).
type Decider = authz.Decider

// Recorder is authz.Recorder: a Decider that has it is told about the
// decisions the adapter makes without asking it (a CheckRequest without
// request.http).
type Recorder = authz.Recorder

// Options configures a Server. The zero value is usable.
type Options struct {
	// Realm is the optional realm of WWW-Authenticate challenges.
	Realm string
	// UserIDHeader, ClientIDHeader and ScopeHeader name the identity headers
	// sent upstream on allow ("" selects the defaults x-auth-user-id,
	// x-auth-client-id, x-auth-scope). Names are lower-cased.
	UserIDHeader, ClientIDHeader, ScopeHeader string
	// Logger receives one line per decision (nil discards), at the
	// decision's level (authz.Decision.LogLevel): allows at Debug, denies at
	// Info, 503s at Warn. Lines carry result, reason, status, method, path
	// without query, user and client ids, the request id and the decision
	// id; never the token or the Authorization header.
	Logger *slog.Logger
	// LogLinesPerSecond caps the decision lines written per second when the
	// Logger is not at Debug (0: logbudget.DefaultPerSecond; negative: none),
	// so that a flood of bad tokens costs a few lines and a count.
	LogLinesPerSecond int
}

// Server implements envoy.service.auth.v3.Authorization. It is safe for
// concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	decider Decider
	realm   string
	headers identityHeaders
	log     *slog.Logger
	logs    *logbudget.Budget
}

// New returns a Server that asks d for decisions.
func New(d Decider, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		decider: d,
		realm:   opts.Realm,
		headers: identityHeaders{
			user:   headerName(opts.UserIDHeader, DefaultUserIDHeader),
			client: headerName(opts.ClientIDHeader, DefaultClientIDHeader),
			scope:  headerName(opts.ScopeHeader, DefaultScopeHeader),
		},
		log:  log,
		logs: logbudget.New(opts.LogLinesPerSecond),
	}
}

// headerName lower-cases a configured header name once, here, rather than per
// request: Envoy matches lower-case names.
func headerName(name, def string) string {
	if name = strings.TrimSpace(name); name == "" {
		return def
	}
	return strings.ToLower(name)
}

// Register registers s as the Authorization service of g.
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
}

// Check implements the Authorization service. It never returns an error: a
// deny is a successful RPC with a non-OK status (see the package comment).
// ctx is passed to the Decider as is, so the proxy's deadline bounds
// directory lookups.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r, ok := RequestFromCheck(req)
	var d authz.Decision
	if ok {
		d = s.decide(ctx, &r)
	} else {
		d = noHTTPDecision
		if rec, ok := s.decider.(Recorder); ok {
			rec.Record(ctx, &d)
		}
	}

	if d.Allowed() && ctx.Err() != nil {
		// The caller's deadline passed (or it cancelled) while deciding.
		// gRPC does not drop a late response: an OK sent now can still
		// reach a client whose own timer has not fired yet (seen with
		// grpc-go). A check that overran is answered like a directory that
		// overran: 503, never an allow.
		d = replaceDecision(d, lateDecision)
	}

	var resp *authv3.CheckResponse
	if d.Allowed() {
		if resp, ok = allowCheckResponse(&d, &s.headers); !ok {
			d = replaceDecision(d, badIdentityDecision)
		}
	}
	if resp == nil {
		d = normalizeDeny(d)
		resp = denyCheckResponse(&d, s.realm)
	}

	if level := d.LogLevel(); s.logs.Enabled(ctx, s.log, level) {
		s.logDecision(ctx, level, req, &r, &d)
	}
	return resp, nil
}

// decide calls the Decider, turning a panic into internalDecision so that
// Check stays safe even where UnaryRecoverer is not installed.
func (s *Server) decide(ctx context.Context, r *authz.Request) (d authz.Decision) {
	defer func() {
		if p := recover(); p != nil {
			logPanic(ctx, s.log, "Decide", p)
			d = internalDecision
		}
	}()
	return s.decider.Decide(ctx, r)
}

// logDecision writes the one line of a decision. It is only called when the
// line is to be written, so that the attributes cost nothing otherwise.
func (s *Server) logDecision(ctx context.Context, level slog.Level, req *authv3.CheckRequest, r *authz.Request, d *authz.Decision) {
	http := req.GetAttributes().GetRequest().GetHttp()
	s.log.LogAttrs(ctx, level, "ext_authz decision",
		slog.String("result", d.Result.String()),
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.Status),
		slog.String("method", r.Method),
		slog.String("path", pathWithoutQuery(r.Path)),
		slog.String("user_id", d.Identity.UserID),
		slog.String("client_id", d.Identity.ClientID),
		slog.String("request_id", requestID(http)),
		slog.String("decision_id", d.DecisionID),
	)
}
