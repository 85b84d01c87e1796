package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

// requestTimeout bounds one check: gatehouse answers within its Redis
// timeout, so a check still unanswered after this is a hang.
const requestTimeout = 2 * time.Second

// gatehouse settings of the run: caches short enough that every phase sees
// them expire, and the documented bounds derived from them (see bounds).
const (
	ghCacheTTL         = 4 * time.Second
	ghNegativeTTL      = 500 * time.Millisecond
	ghStaleIfError     = 6 * time.Second
	ghShutdownTimeout  = 5 * time.Second
	ghInvalidationWait = time.Second // listener's retry after a failed receive (server/invalidate.go)
	ghCircuitCooldown  = time.Second
)

// runBounds are the oracle's bounds for these settings.
func runBounds() bounds {
	const slack = 500 * time.Millisecond
	return bounds{
		Stale:        max(ghCacheTTL, ghStaleIfError) + slack,
		Invalidation: ghInvalidationWait + slack + 500*time.Millisecond,
		Recovery:     ghCircuitCooldown + time.Second,
	}
}

// target is one gatehouse process and the clients that load it.
type target struct {
	idx      int
	name     string
	dep      *deployment
	w        *writer
	gh       *proc.Process
	conn     *grpc.ClientConn
	auth     authv3.AuthorizationClient
	httpBase string
	httpc    *http.Client
	// stopAt is the run time at which SIGTERM was sent (-1: never): errors
	// of checks sent after it are expected.
	stopAt atomic.Int64
}

// listening is gatehouse's start-up line.
type listening struct {
	Msg  string `json:"msg"`
	GRPC string `json:"grpc"`
	HTTP string `json:"http"`
}

// logWatch counts gatehouse log lines that explain a phase's figures.
type logWatch struct {
	clk clock
	mu  sync.Mutex
	ev  []logEvent
}

type logEvent struct {
	t      time.Duration
	target int
	what   string
}

// watched maps a log message (its beginning) to the name the report uses.
var watched = []struct{ prefix, name string }{
	{"directory circuit opened", "circuit-open"},
	{"directory origin failed; serving stale", "stale"},
	{"invalidation channel resubscribed", "resubscribed"},
}

// events returns a copy of the events seen so far (the servers may still
// be logging).
func (lw *logWatch) events() []logEvent {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return append([]logEvent(nil), lw.ev...)
}

func (lw *logWatch) line(target int) func(string) {
	return func(line string) {
		var rec struct {
			Msg string `json:"msg"`
		}
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &rec) != nil {
			return
		}
		for _, w := range watched {
			if strings.HasPrefix(rec.Msg, w.prefix) {
				lw.mu.Lock()
				lw.ev = append(lw.ev, logEvent{t: lw.clk.now(), target: target, what: w.name})
				lw.mu.Unlock()
			}
		}
	}
}

// startGatehouse runs bin against d and connects the load clients.
func startGatehouse(ctx context.Context, ps *proc.Group, bin string, idx int, d *deployment, w *writer, lw *logWatch) (*target, error) {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"GATEHOUSE_JWT_SECRET=" + jwtSecret,
		"GATEHOUSE_REDIS_URL=" + d.url,
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_HTTP_ADDR=127.0.0.1:0",
		"GATEHOUSE_CACHE_TTL=" + ghCacheTTL.String(),
		"GATEHOUSE_CACHE_NEGATIVE_TTL=" + ghNegativeTTL.String(),
		"GATEHOUSE_CACHE_STALE_IF_ERROR=" + ghStaleIfError.String(),
		"GATEHOUSE_SHUTDOWN_TIMEOUT=" + ghShutdownTimeout.String(),
		// The sigterm phase's model expects the graceful stop at once.
		"GATEHOUSE_DRAIN_PERIOD=0s",
		"GATEHOUSE_LOG_LEVEL=info",
		"GATEHOUSE_LOG_RATE=20",
	}
	var httpAddr string
	ready := func(line string) (string, bool) {
		var rec listening
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "listening" || rec.GRPC == "" {
			return "", false
		}
		httpAddr = rec.HTTP
		return rec.GRPC, true
	}
	name := "gatehouse-" + d.kind.String()
	p, err := ps.Start(ctx, name, command(bin, []string{"serve"}, env), readyTimeout, ready, lw.line(idx))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(httpAddr, "127.0.0.1:") {
		return nil, fmt.Errorf("%s: forward-auth listener %q, want 127.0.0.1:PORT", name, httpAddr)
	}
	conn, err := grpc.NewClient(p.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.Addr(), err)
	}
	t := &target{idx: idx, name: d.kind.String(), dep: d, w: w, gh: p, conn: conn,
		auth: authv3.NewAuthorizationClient(conn), httpBase: "http://" + httpAddr,
		httpc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}}
	t.stopAt.Store(-1)
	return t, nil
}

func (t *target) close() {
	_ = t.conn.Close()
	t.httpc.CloseIdleConnections()
}

// outcome is what one check got.
type outcome uint8

const (
	oAllow outcome = iota
	oDeny
	o503
	oError // transport error, timeout, or an answer outside the contract
)

// sample is one check as the client saw it.
type sample struct {
	t0, t1 time.Duration
	user   int32
	target int8
	http   bool
	out    outcome
}

// errSample keeps the text of an error for the report.
type errSample struct {
	t0     time.Duration
	target int
	http   bool
	err    string
}

// checkGRPC sends one Check for user u over gRPC.
func (tg *target) checkGRPC(u *user) (outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := tg.auth.Check(ctx, u.check)
	if err != nil {
		return oError, fmt.Errorf("gRPC: %w", err)
	}
	if resp.GetStatus().GetCode() == 0 {
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "x-auth-user-id" {
				if v := h.GetHeader().GetValue(); v != u.id {
					return oError, fmt.Errorf("gRPC: allow with x-auth-user-id %q for user %s", v, u.id)
				}
				return oAllow, nil
			}
		}
		return oError, fmt.Errorf("gRPC: allow without x-auth-user-id for user %s", u.id)
	}
	switch c := resp.GetDeniedResponse().GetStatus().GetCode(); c {
	case typev3.StatusCode_Unauthorized, typev3.StatusCode_Forbidden:
		return oDeny, nil
	case typev3.StatusCode_ServiceUnavailable:
		return o503, nil
	default:
		return oError, fmt.Errorf("gRPC: deny with HTTP status %v (grpc code %d)", c, resp.GetStatus().GetCode())
	}
}

// checkHTTP sends one forward-auth check for user u: as nginx auth_request
// does (GET /check, X-Original-*) or as Envoy http_service does (the
// original path under /check).
func (tg *target) checkHTTP(u *user, envoyForm bool) (outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	url := tg.httpBase + "/check"
	if envoyForm {
		url += "/v1/orders"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return oError, fmt.Errorf("HTTP: %w", err)
	}
	req.Host = "orders.example.com"
	req.Header.Set("Authorization", u.auth)
	if !envoyForm {
		req.Header.Set("X-Original-Method", "POST")
		req.Header.Set("X-Original-URI", "/v1/orders")
	}
	resp, err := tg.httpc.Do(req)
	if err != nil {
		return oError, fmt.Errorf("HTTP: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if v := resp.Header.Get("X-Auth-User-Id"); v != u.id {
			return oError, fmt.Errorf("HTTP: 200 with X-Auth-User-Id %q for user %s", v, u.id)
		}
		return oAllow, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return oDeny, nil
	case http.StatusServiceUnavailable:
		return o503, nil
	default:
		return oError, fmt.Errorf("HTTP: status %d", resp.StatusCode)
	}
}

// loader drives the current target with a few gRPC and HTTP workers, each
// paced, and keeps every sample.
type loader struct {
	clk      clock
	pop      *population
	cur      atomic.Pointer[target]
	interval time.Duration // between two checks of one worker
	seed     uint64

	mu      sync.Mutex
	samples []sample
	errs    []errSample
}

const maxErrSamples = 200

func (l *loader) run(ctx context.Context, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, i, i%2 == 1)
		}()
	}
	return &wg
}

func (l *loader) worker(ctx context.Context, id int, useHTTP bool) {
	rng := rand.New(rand.NewPCG(l.seed, uint64(id)))
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	var mine []sample
	var errs []errSample
	defer func() {
		l.mu.Lock()
		l.samples = append(l.samples, mine...)
		for _, e := range errs {
			if len(l.errs) < maxErrSamples {
				l.errs = append(l.errs, e)
			}
		}
		l.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		tg := l.cur.Load()
		if tg == nil {
			continue
		}
		u := l.pop.pick(rng)
		t0 := l.clk.now()
		var (
			out outcome
			err error
		)
		if useHTTP {
			out, err = tg.checkHTTP(&l.pop.users[u], rng.IntN(2) == 0)
		} else {
			out, err = tg.checkGRPC(&l.pop.users[u])
		}
		t1 := l.clk.now()
		mine = append(mine, sample{t0: t0, t1: t1, user: int32(u), target: int8(tg.idx), http: useHTTP, out: out})
		if err != nil {
			// Keep few of the errors expected after SIGTERM (connection
			// refused), so that they do not crowd out the others.
			stop := tg.stopAt.Load()
			limit := maxErrSamples
			if stop >= 0 && int64(t0) >= stop {
				limit = 3
			}
			if len(errs) < limit {
				errs = append(errs, errSample{t0: t0, target: tg.idx, http: useHTTP, err: err.Error()})
			}
		}
	}
}
