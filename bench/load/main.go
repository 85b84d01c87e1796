// Command load is gatehouse's side-by-side load benchmark (`make load`).
//
// It starts a private redis-server on a random loopback port and seeds it
// with users, starts gatehouse (against that Redis) and the do-nothing
// ext_authz server (bench/noop), then drives both in alternation in one run
// (gatehouse, noop, gatehouse, noop... for --rounds rounds) with its own
// grpc-go client, at each concurrency, over four scenarios:
//
//	hot       the same valid token for one user, cached
//	distinct  valid tokens of --users distinct users, cycling
//	invalid   garbage and badly signed tokens (they must never reach Redis)
//	istio     hot, with the request of a sidecar in an Istio mTLS mesh
//	          (peer certificate, filter metadata, a dozen more headers)
//
// For each row it reports the medians over rounds of checks/s, p50 and p99
// latency and server CPU per check, the peak resident memory, and the ratio
// of gatehouse to the do-nothing server; it prints a table and writes
// results.json and results.png to --out.
//
// Every run is bounded by its duration and by --max-checks, and every child
// process is stopped when the driver exits, also on SIGINT and SIGTERM.
// Nothing listens on anything but 127.0.0.1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/bench/workload"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

// params are the knobs of one load run.
type params struct {
	Gatehouse    string        `json:"-"`
	Noop         string        `json:"-"`
	RedisServer  string        `json:"-"`
	Out          string        `json:"-"`
	Duration     time.Duration `json:"-"`
	Warmup       time.Duration `json:"-"`
	DurationS    float64       `json:"duration_s"`
	WarmupS      float64       `json:"warmup_s"`
	Rounds       int           `json:"rounds"`
	Concurrency  []int         `json:"concurrency"`
	Scenarios    []string      `json:"scenarios"`
	Users        int           `json:"users"`
	Conns        int           `json:"connections"`
	MaxChecks    int           `json:"max_checks_per_run"`
	CacheUsers   int           `json:"cache_bound_users"`
	CacheSize    int           `json:"cache_size"`
	RequestBytes int           `json:"request_bytes"`
	// ScenarioBytes is the size of each scenario's (first) request:
	// RequestBytes is that of the base request, istio's is bigger.
	ScenarioBytes map[string]int `json:"scenario_request_bytes,omitempty"`
	ServerEnv     []string       `json:"server_env,omitempty"`
	KeepLogs      string         `json:"-"`
	ChartFrom     string         `json:"-"`
	// NoopArgs are extra arguments of the do-nothing server (experiments
	// only: the baseline runs without any).
	NoopArgs []string `json:"noop_args,omitempty"`
}

// envList collects repeated KEY=VALUE flags.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(2)
	}
	if p.ChartFrom != "" {
		if err := redraw(p.ChartFrom, p.Out); err != nil {
			log.Error("redraw failed", "error", err.Error())
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, p); err != nil {
		log.Error("load run failed", "error", err.Error())
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (params, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var p params
	var conc, scen string
	fs.StringVar(&p.Gatehouse, "gatehouse", "bin/gatehouse", "gatehouse `binary`")
	fs.StringVar(&p.Noop, "noop", "bin/bench-noop", "do-nothing ext_authz server `binary` (bench/noop)")
	fs.StringVar(&p.RedisServer, "redis-server", "redis-server", "redis-server `binary`")
	fs.StringVar(&p.Out, "out", envString("LOAD_OUT", "docs/bench"), "`directory` for results.json and results.png (env LOAD_OUT; \"-\": write nothing)")
	fs.DurationVar(&p.Duration, "duration", envDuration("LOAD_DURATION", 5*time.Second), "measured time of one run (env LOAD_DURATION)")
	fs.DurationVar(&p.Warmup, "warmup", envDuration("LOAD_WARMUP", time.Second), "unmeasured warm-up before each run (env LOAD_WARMUP)")
	fs.IntVar(&p.Rounds, "rounds", envInt("LOAD_ROUNDS", 3), "rounds; each runs every server once per row (env LOAD_ROUNDS)")
	fs.StringVar(&conc, "concurrency", envString("LOAD_CONCURRENCY", "1,16,64"), "comma-separated `list` of in-flight checks (env LOAD_CONCURRENCY)")
	fs.StringVar(&scen, "scenarios", envString("LOAD_SCENARIOS", "hot,distinct,invalid,istio"), "comma-separated `list` of scenarios (env LOAD_SCENARIOS)")
	fs.IntVar(&p.Users, "users", envInt("LOAD_USERS", 10000), "users seeded in Redis and cycled by the distinct scenario (env LOAD_USERS)")
	fs.IntVar(&p.Conns, "conns", envInt("LOAD_CONNS", 4), "gRPC connections per server, like a few Envoy workers (env LOAD_CONNS)")
	fs.IntVar(&p.MaxChecks, "max-checks", 5_000_000, "upper bound on the checks of one measured run")
	fs.IntVar(&p.CacheUsers, "cache-users", envInt("LOAD_CACHE_USERS", 1_000_000), "distinct users for the cache-bound check (0: skip; env LOAD_CACHE_USERS)")
	fs.IntVar(&p.CacheSize, "cache-size", envInt("LOAD_CACHE_SIZE", 100_000), "user cache size of the cache-bound check (default: gatehouse's; env LOAD_CACHE_SIZE)")
	fs.Func("noop-arg", "extra `argument` of the do-nothing server, e.g. --stream-workers=64 (repeatable; experiments only)", func(v string) error {
		p.NoopArgs = append(p.NoopArgs, v)
		return nil
	})
	fs.StringVar(&p.ChartFrom, "chart-from", "", "redraw results.png in --out from this results.json `file` and exit (no load run)")
	var senv envList
	fs.Var(&senv, "server-env", "`KEY=VALUE` added to the environment of both servers (repeatable; e.g. GOGC=50, GODEBUG=gctrace=1)")
	fs.StringVar(&p.KeepLogs, "keep-logs", "", "`directory` to copy the servers' and Redis's logs to (empty: discard them)")
	if err := fs.Parse(args); err != nil {
		return p, err
	}
	p.ServerEnv = senv
	var err error
	if p.Concurrency, err = parseInts(conc); err != nil {
		return p, fmt.Errorf("--concurrency: %w", err)
	}
	p.Scenarios = strings.Split(scen, ",")
	switch {
	case p.Rounds < 1:
		return p, errors.New("--rounds must be at least 1")
	case p.Duration <= 0 || p.Duration > 10*time.Minute:
		return p, errors.New("--duration must be in (0, 10m]")
	case p.Warmup < 0 || p.Warmup > time.Minute:
		return p, errors.New("--warmup must be in [0, 1m]")
	case p.Users < 1 || p.Conns < 1 || p.MaxChecks < 1:
		return p, errors.New("--users, --conns and --max-checks must be positive")
	}
	p.DurationS, p.WarmupS = p.Duration.Seconds(), p.Warmup.Seconds()
	return p, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("bad value %q (want 1..4096)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func envString(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(envString(key, "")); err == nil {
		return n
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(envString(key, "")); err == nil {
		return d
	}
	return def
}

// target is one server under test.
type target struct {
	name    string
	proc    *proc.Process
	clients *clients
}

// benchSecret is the HMAC key gatehouse runs with during the benchmark.
const benchSecret = "gatehouse-load-benchmark-secret-0123456789"

func run(ctx context.Context, log *slog.Logger, p params) error {
	for _, bin := range []*string{&p.Gatehouse, &p.Noop, &p.RedisServer} {
		path, err := exec.LookPath(*bin)
		if err != nil {
			return fmt.Errorf("find %s: %w", *bin, err)
		}
		*bin = path
	}
	dir, err := os.MkdirTemp("", "gatehouse-load-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	ps := &proc.Group{Dir: dir}
	defer func() {
		ps.StopAll()
		if p.KeepLogs != "" {
			keepLogs(log, dir, p.KeepLogs)
		}
	}()

	res := &results{Params: p, Machine: describeMachine()}
	res.Machine.LoadAvgStart = loadAvg()

	// The 1e6-users check runs first, before anything else loads the
	// machine, in this process (it measures heap, not time).
	if p.CacheUsers > 0 {
		log.Info("cache bound check", "users", p.CacheUsers, "cache_size", p.CacheSize)
		cb, err := cacheBound(ctx, p.CacheUsers, p.CacheSize)
		if err != nil {
			return err
		}
		res.CacheBound = &cb
	}

	redisProc, err := startRedis(ctx, ps, p.RedisServer)
	if err != nil {
		return err
	}
	rdb := newRedis(redisProc.Addr())
	defer rdb.Close()
	if err := seedUsers(ctx, rdb, p.Users); err != nil {
		return err
	}
	log.Info("redis seeded", "addr", redisProc.Addr(), "users", p.Users)

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"GATEHOUSE_JWT_SECRET=" + benchSecret,
		"GATEHOUSE_REDIS_URL=redis://" + redisProc.Addr() + "/0",
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_HTTP_ADDR=", // gRPC only: no forward-auth listener on :8080
		"GATEHOUSE_LOG_LEVEL=info",
		"GATEHOUSE_DRAIN_PERIOD=0s", // stop at once when the run ends
	}
	env = append(env, p.ServerEnv...)
	jwt := authz.JWTConfig{Secret: []byte(benchSecret), Algorithm: authz.DefaultAlgorithm, Issuer: authz.DefaultIssuer}
	// Tokens must outlive the run: every row, round and server, plus slack.
	runs := len(p.Scenarios) * len(p.Concurrency) * p.Rounds * 2
	ttl := time.Duration(runs)*(p.Duration+p.Warmup+5*time.Second) + time.Hour
	ttl = ttl.Truncate(time.Second)

	for _, name := range p.Scenarios {
		w, err := workload.Build(name, jwt, p.Users, ttl)
		if err != nil {
			return err
		}
		if res.Params.ScenarioBytes == nil {
			res.Params.ScenarioBytes = map[string]int{}
		}
		res.Params.ScenarioBytes[name] = len(w.Requests[0])
		if name != workload.Istio {
			res.Params.RequestBytes = max(res.Params.RequestBytes, len(w.Requests[0]))
		}
		rows, err := runScenario(ctx, log, p, ps, env, redisProc, rdb, w)
		if err != nil {
			return err
		}
		res.Rows = append(res.Rows, rows...)
	}
	res.Machine.LoadAvgEnd = loadAvg()
	res.check()
	res.printTable(os.Stdout)
	if p.Out != "" && p.Out != "-" {
		if err := res.write(log, p.Out); err != nil {
			return err
		}
	}
	// Correctness, not performance: a forged token must be refused before
	// the directory is asked. This fails the run (and CI) whatever the
	// timing.
	if n := res.InvalidRedisLookups; n != nil && *n != 0 {
		return fmt.Errorf("invalid tokens caused %d Redis lookups; want none", *n)
	}
	return nil
}

// write saves results.json and results.png in dir.
func (r *results) write(log *slog.Logger, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := r.writeJSON(filepath.Join(dir, "results.json")); err != nil {
		return err
	}
	if err := writeChart(filepath.Join(dir, "results.png"), r); err != nil {
		return err
	}
	log.Info("results written", "dir", dir)
	return nil
}

// runScenario starts a fresh gatehouse and do-nothing server, so that each
// scenario's memory and caches owe nothing to the one before, primes both
// with every request of w once (unmeasured: the distinct scenario then
// measures a steady state, not a cold start), and measures every
// concurrency, alternating the servers within each round.
func runScenario(ctx context.Context, log *slog.Logger, p params, ps *proc.Group, env []string, redisProc *proc.Process, rdb *redis.Client, w *workload.Workload) ([]*row, error) {
	gh, err := ps.Start(ctx, "gatehouse-"+w.Name, command(p.Gatehouse, []string{"serve"}, env), readyTimeout, jsonListening, nil)
	if err != nil {
		return nil, err
	}
	noop, err := ps.Start(ctx, "noop-"+w.Name, command(p.Noop, append([]string{"--addr", "127.0.0.1:0"}, p.NoopArgs...), append([]string{"PATH=" + os.Getenv("PATH")}, p.ServerEnv...)), readyTimeout, textListening, nil)
	if err != nil {
		return nil, err
	}
	defer ps.Stop(gh, noop)
	targets := []*target{{name: "gatehouse", proc: gh}, {name: "noop", proc: noop}}
	for _, t := range targets {
		if t.clients, err = dial(t.proc.Addr(), p.Conns); err != nil {
			return nil, err
		}
		defer t.clients.close()
	}
	log.Info("servers ready", "scenario", w.Name, "gatehouse", gh.Addr(), "noop", noop.Addr(), "gatehouse_pid", gh.Pid(), "noop_pid", noop.Pid())
	// Every process of the benchmark, to tell their CPU from the rest of
	// the machine's.
	ours := []int{0, redisProc.Pid(), gh.Pid(), noop.Pid()}

	for _, t := range targets {
		if err := prime(ctx, t.clients, w, wantCode(t, w)); err != nil {
			return nil, fmt.Errorf("%s: prime %s: %w", w.Name, t.name, err)
		}
	}
	var rows []*row
	for _, c := range p.Concurrency {
		row := newRow(w.Name, c)
		for round := range p.Rounds {
			for _, t := range targets {
				m, err := measure(ctx, p, rdb, t, w, wantCode(t, w), c, ours)
				if err != nil {
					return nil, fmt.Errorf("%s c=%d round %d, %s: %w", w.Name, c, round+1, t.name, err)
				}
				log.Info("run", "scenario", w.Name, "c", c, "round", round+1, "server", t.name,
					"checks_per_s", int(m.ChecksPerSec), "p50_us", m.P50us, "p99_us", m.P99us,
					"cpu_us_per_check", m.CPUusPerCheck, "redis_per_check", m.RedisPerCheck)
				row.add(t.name, m)
			}
		}
		row.finish()
		rows = append(rows, row)
	}
	return rows, nil
}

// wantCode is the CheckResponse status code t must answer w with: the
// do-nothing server says OK to everything.
func wantCode(t *target, w *workload.Workload) int32 {
	if t.name == "gatehouse" {
		return w.WantCode
	}
	return 0
}

// measure runs one bounded load run against t and returns what the client
// and /proc saw during its measured window.
func measure(ctx context.Context, p params, rdb *redis.Client, t *target, w *workload.Workload, want int32, c int, ours []int) (measurement, error) {
	pid := t.proc.Pid()
	var (
		cpu0, self0, busy0, ours0 time.Duration
		redis0                    int64
		snapErr                   error
	)
	hwmReset := resetPeakRSS(pid)
	onMeasure := func() {
		var e1, e2, e3, e4, e5 error
		cpu0, e1 = cpuTime(pid)
		self0, e2 = cpuTime(0)
		busy0, e3 = systemBusy()
		redis0, e4 = lookupCalls(ctx, rdb)
		ours0, e5 = cpuTimes(ours)
		snapErr = errors.Join(e1, e2, e3, e4, e5)
	}
	r, err := drive(ctx, t.clients, w, want, c, p.Warmup, p.Duration, p.MaxChecks, onMeasure)
	if err != nil {
		return measurement{}, err
	}
	if snapErr != nil {
		return measurement{}, snapErr
	}
	cpu1, e1 := cpuTime(pid)
	self1, e2 := cpuTime(0)
	busy1, e3 := systemBusy()
	redis1, e4 := lookupCalls(ctx, rdb)
	hwm, e5 := statusKiB(pid, "VmHWM")
	ours1, e6 := cpuTimes(ours)
	if err := errors.Join(e1, e2, e3, e4, e5, e6); err != nil {
		return measurement{}, err
	}
	server, client, busy := cpu1-cpu0, self1-self0, busy1-busy0
	secs := r.elapsed.Seconds()
	m := measurement{
		Checks:         r.checks,
		ChecksPerSec:   float64(r.checks) / secs,
		P50us:          us(r.quantile(0.50)),
		P99us:          us(r.quantile(0.99)),
		CPUusPerCheck:  us(server) / float64(r.checks),
		ClientCPUus:    us(client) / float64(r.checks),
		PeakRSSMiB:     float64(hwm) / 1024,
		PeakRSSReset:   hwmReset,
		RedisCalls:     redis1 - redis0,
		RedisPerCheck:  float64(redis1-redis0) / float64(r.checks),
		OtherCPUPct:    max(0, 100*(busy-(ours1-ours0)).Seconds()/secs/float64(runtime.NumCPU())),
		ServerCPUCores: server.Seconds() / secs,
	}
	return m, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// keepLogs copies the *.log files of dir to dst.
func keepLogs(log *slog.Logger, dir, dst string) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		log.Warn("keep logs", "error", err.Error())
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
		}
		if err != nil {
			log.Warn("keep logs", "file", f, "error", err.Error())
		}
	}
}

// redraw writes results.png in dir from a results.json written earlier.
func redraw(from, dir string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode %s: %w", from, err)
	}
	return writeChart(filepath.Join(dir, "results.png"), &r)
}
