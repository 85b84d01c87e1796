package extauthz

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
	"github.com/gatehouse-authz/gatehouse/authz/internal/adapter"
	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
)

// Default identity header names (docs/design.md#identity-headers).
const (
	DefaultUserIDHeader   = adapter.DefaultUserIDHeader
	DefaultClientIDHeader = adapter.DefaultClientIDHeader
	DefaultScopeHeader    = adapter.DefaultScopeHeader
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
	// x-auth-client-id, x-auth-scope). Names are lower-cased; New panics on
	// a name that is not an HTTP token.
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
	// OmitDynamicMetadata leaves CheckResponse.dynamic_metadata out of every
	// answer. By default it is sent: result, reason, user_id, client_id and
	// decision_id, under Envoy's envoy.filters.http.ext_authz namespace, for
	// access logs and rate limits. Leaving it out halves an allow (152
	// bytes instead of 328 on the hot path) and saves ~0.5 µs of encoding
	// per check, for proxies that do not use it.
	OmitDynamicMetadata bool
}

// Server implements envoy.service.auth.v3.Authorization. It is safe for
// concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	decider Decider
	realm   string
	headers identityHeaders
	// enc encodes answers for servers made by NewGRPCServer; it holds the
	// realm and header names above too.
	enc  encoder
	log  *slog.Logger
	logs *logbudget.Budget
}

// New returns a Server that asks d for decisions. It panics on an identity
// header name that is not an HTTP token, as forwardauth.New does; gatehouse's
// configuration refuses such names before.
func New(d Decider, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	headers := identityHeaders{
		user:   headerName(opts.UserIDHeader, DefaultUserIDHeader),
		client: headerName(opts.ClientIDHeader, DefaultClientIDHeader),
		scope:  headerName(opts.ScopeHeader, DefaultScopeHeader),
	}
	return &Server{
		decider: d,
		realm:   opts.Realm,
		headers: headers,
		enc:     encoder{realm: opts.Realm, headers: headers, metadata: !opts.OmitDynamicMetadata},
		log:     log,
		logs:    logbudget.New(opts.LogLinesPerSecond),
	}
}

// headerName returns a configured identity header name (adapter.HeaderName)
// lower-cased once, here, rather than per request: Envoy matches lower-case
// names. forwardauth canonicalises instead, because it writes net/http's
// header map directly.
func headerName(name, def string) string {
	name, err := adapter.HeaderName(name, def)
	if err != nil {
		panic(fmt.Errorf("extauthz: %w", err))
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
	c := CheckFromRequest(req)
	return s.check(ctx, &c), nil
}

// check answers a CheckRequest from what Check reads of it (c comes from
// CheckFromRequest) with a CheckResponse message.
func (s *Server) check(ctx context.Context, c *checkwire.Check) *authv3.CheckResponse {
	d := s.settle(ctx, c)
	return s.response(&d)
}

// checkEncoded is check for a server made by NewGRPCServer: c comes straight
// from the wire (checkwire), and the answer goes back in wire form, encoded
// by hand (encoder).
func (s *Server) checkEncoded(ctx context.Context, c *checkwire.Check) *checkwire.Encoded {
	d := s.settle(ctx, c)
	return s.enc.encode(&d)
}

// settle decides c and returns the decision to answer, after the adapter's
// own rules, and logs it: a late allow becomes a 503, and the rest is
// sendable's. Both encodings of the answer start from it.
func (s *Server) settle(ctx context.Context, c *checkwire.Check) authz.Decision {
	r, ok := &c.Request, c.HTTP
	var d authz.Decision
	if ok {
		d = s.decide(ctx, r)
	} else {
		d = noHTTPDecision
		adapter.Record(ctx, s.decider, &d)
	}

	if d.Allowed() && ctx.Err() != nil {
		// The caller's deadline passed (or it cancelled) while deciding.
		// gRPC does not drop a late response: an OK sent now can still
		// reach a client whose own timer has not fired yet (seen with
		// grpc-go). A check that overran is answered like a directory that
		// overran: 503, never an allow.
		d = adapter.Replace(d, lateDecision)
	}
	d = sendable(d)

	if level := d.LogLevel(); s.logs.Enabled(ctx, s.log, level) {
		s.logDecision(ctx, level, r, c.RequestID, &d)
	}
	return d
}

// sendable returns what answers d: d when it is an allow whose identity can
// be sent as header values, badIdentityDecision for another allow, and
// normalizeDeny's form of any other decision.
func sendable(d authz.Decision) authz.Decision {
	if d.Allowed() && !adapter.IdentitySendable(&d.Identity) {
		d = adapter.Replace(d, badIdentityDecision)
	}
	if !d.Allowed() {
		d = normalizeDeny(d)
	}
	return d
}

// response builds the answer to d, which settle returned, as a message.
func (s *Server) response(d *authz.Decision) *authv3.CheckResponse {
	var resp *authv3.CheckResponse
	if d.Allowed() {
		resp, _ = allowCheckResponse(d, &s.headers) // settle checked the identity
	}
	if resp == nil {
		resp = denyCheckResponse(d, s.realm)
	}
	if !s.enc.metadata {
		resp.DynamicMetadata = nil
	}
	return resp
}

// decide calls the Decider, turning a panic into internalDecision so that
// Check stays safe even where UnaryRecoverer is not installed. Every panic
// is recovered: unlike forwardauth, which passes net/http's
// http.ErrAbortHandler on, there is nothing here that a panic should reach,
// and an unrecovered one would end the process.
func (s *Server) decide(ctx context.Context, r *authz.Request) (d authz.Decision) {
	defer func() {
		if p := recover(); p != nil {
			adapter.LogPanic(ctx, s.log, "Decide", p)
			d = internalDecision
		}
	}()
	return s.decider.Decide(ctx, r)
}

// logDecision writes the one line of a decision, with the attributes both
// adapters log (adapter.DecisionAttrs). It is only called when the line is
// to be written, so that the attributes cost nothing otherwise.
func (s *Server) logDecision(ctx context.Context, level slog.Level, r *authz.Request, reqID string, d *authz.Decision) {
	var buf [9]slog.Attr
	attrs := adapter.DecisionAttrs(buf[:0], r, d, reqID)
	s.log.LogAttrs(ctx, level, "ext_authz decision", attrs...)
}
