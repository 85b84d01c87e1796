// Command chaos is gatehouse's bounded chaos run (`make chaos`).
//
// It starts, on loopback ports, three Redis deployments (a standalone
// redis-server; a master, a replica and a sentinel; a three-shard Cluster
// with a replica per shard) and one gatehouse against each, then loads the
// current gatehouse through both listeners (Envoy ext_authz gRPC Check and
// HTTP forward-auth, nginx and Envoy http_service forms) with users whose
// records it controls: active (a few hot ones, many cold ones), disabled,
// unknown, one with a wrong-typed key, and a few it disables and enables
// over and over, publishing each change. Meanwhile it breaks Redis phase by
// phase: stalled (SIGSTOP), killed and restarted empty, FLUSHALL, keys given
// wrong types, then SIGTERM to gatehouse under load, a Sentinel master
// killed, a Cluster master killed.
//
// Every answer is checked against what the directory said when it was
// asked (model.go), allowing for the documented cache bounds: an allow for a
// user whose record was not active within the bound is a wrongful allow; a
// 503 for a user whose record was readable (its shard answering, the key
// well-typed) from a recovery allowance before the request to its answer is
// an unexpected 503. Any of these, a transport error outside gatehouse's
// shutdown, an unanswered in-flight check at SIGTERM or an unclean exit
// fails the run (exit code 1). A problem of the run itself exits 2.
//
// The whole run is bounded (2 minutes; 40 seconds with -short or
// CHAOS_SHORT=1), and every child is stopped on exit, also on Ctrl-C; the
// kernel kills them should the driver die (PR_SET_PDEATHSIG).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

// redisLog hands go-redis's log lines to slog.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "from", "go-redis")
}

// params are the command-line settings.
type params struct {
	Gatehouse   string
	RedisServer string
	Short       bool
	Rate        int
	Workers     int
	Seed        uint64
	Logs        string
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The driver's own Sentinel and Cluster clients narrate failovers; their
	// lines go to slog at debug level rather than interleave with the run's.
	redis.SetLogger(redisLog{log})
	p, err := parseParams(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	failed, err := run(ctx, log, os.Stdout, p)
	stop()
	switch {
	case err != nil:
		log.Error("chaos run could not complete", "error", err.Error())
		os.Exit(2)
	case failed:
		os.Exit(1)
	}
}

func parseParams(args []string) (params, error) {
	var p params
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.StringVar(&p.Gatehouse, "gatehouse", "", "gatehouse `binary` (default: go build ./cmd/gatehouse into a temporary directory)")
	fs.StringVar(&p.RedisServer, "redis-server", "redis-server", "redis-server `binary`")
	short, _ := strconv.ParseBool(os.Getenv("CHAOS_SHORT"))
	fs.BoolVar(&p.Short, "short", short, "short run for CI, at most 40 s (env CHAOS_SHORT=1)")
	fs.IntVar(&p.Rate, "rate", 1200, "checks per second, all workers together")
	fs.IntVar(&p.Workers, "workers", 6, "load workers, half gRPC, half HTTP")
	fs.Uint64Var(&p.Seed, "seed", 1, "seed of the users' draw")
	fs.StringVar(&p.Logs, "logs", os.Getenv("CHAOS_LOGS"), "copy the children's logs to this `dir` at the end (env CHAOS_LOGS)")
	if err := fs.Parse(args); err != nil {
		return p, err
	}
	if fs.NArg() > 0 {
		return p, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if p.Rate < 10 || p.Rate > 20000 || p.Workers < 2 || p.Workers > 64 {
		return p, errors.New("--rate must be in [10, 20000] and --workers in [2, 64]")
	}
	return p, nil
}

// plan is how long each step of the run lasts.
type plan struct {
	Deadline     time.Duration // the whole run, set-up included
	Baseline     time.Duration // the first phase
	Pre          time.Duration // load before each phase's fault
	Stall        time.Duration // Redis SIGSTOPped
	Down         time.Duration // Redis dead before its restart
	ReseedAfter  time.Duration // empty Redis before the records are written again
	Hold         time.Duration // wrong-typed keys in place
	Post         time.Duration // load after an outage is repaired (more than bounds.Recovery)
	PostHealthy  time.Duration // load after a fault Redis kept answering through
	FailoverPost time.Duration // load after a failover
}

func fullPlan() plan {
	return plan{Deadline: 2 * time.Minute, Baseline: 6 * time.Second, Pre: 2 * time.Second,
		Stall: 3 * time.Second, Down: 2 * time.Second, ReseedAfter: 1500 * time.Millisecond,
		Hold: 4 * time.Second, Post: 5 * time.Second, PostHealthy: 4 * time.Second, FailoverPost: 8 * time.Second}
}

// shortPlan keeps every phase; the load after an outage still outlasts the
// recovery allowance (2 s), so that checks after the repair still count.
func shortPlan() plan {
	return plan{Deadline: 40 * time.Second, Baseline: time.Second, Pre: 500 * time.Millisecond,
		Stall: time.Second, Down: 700 * time.Millisecond, ReseedAfter: 500 * time.Millisecond,
		Hold: 1200 * time.Millisecond, Post: 2500 * time.Millisecond, PostHealthy: time.Second, FailoverPost: 2500 * time.Millisecond}
}

// run does the whole chaos run; failed reports an oracle failure, err a
// problem of the run itself.
func run(ctx context.Context, log *slog.Logger, out io.Writer, p params) (failed bool, err error) {
	pl := fullPlan()
	if p.Short {
		pl = shortPlan()
	}
	redisBin, err := exec.LookPath(p.RedisServer)
	if err != nil {
		return false, fmt.Errorf("find redis-server (scripts/ensure-deps.sh installs it): %w", err)
	}
	dir, err := os.MkdirTemp("", "gatehouse-chaos-")
	if err != nil {
		return false, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if p.Gatehouse == "" {
		p.Gatehouse, err = buildGatehouse(ctx, log, dir)
		if err != nil {
			return false, err
		}
	} else if p.Gatehouse, err = exec.LookPath(p.Gatehouse); err != nil {
		return false, fmt.Errorf("find gatehouse: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, pl.Deadline)
	defer cancel()
	ps := &proc.Group{Dir: dir}
	defer func() {
		ps.StopAll()
		if p.Logs != "" {
			copyLogs(log, dir, p.Logs)
		}
	}()

	r := &runner{log: log, clk: clock{start: time.Now()}, plan: pl, ps: ps}
	r.pop, err = newPopulation(time.Hour)
	if err != nil {
		return false, err
	}
	defer r.close()
	if err := r.setup(ctx, redisBin, p.Gatehouse); err != nil {
		return false, err
	}
	log.Info("set up", "took", r.clk.now().Round(time.Millisecond), "standalone", r.deps[standalone].url,
		"sentinel", r.deps[sentinel].url, "cluster", r.deps[cluster].url)

	r.load = &loader{clk: r.clk, pop: r.pop, interval: time.Duration(p.Workers) * time.Second / time.Duration(p.Rate), seed: p.Seed}
	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoad()
	workers := r.load.run(loadCtx, p.Workers)
	flipDone := make(chan struct{})
	go func() {
		defer close(flipDone)
		r.flipLoop(loadCtx)
	}()

	phaseErr := r.phases(ctx)
	r.end = r.clk.now()
	stopLoad()
	workers.Wait()
	<-flipDone
	// Even a run cut short reports what it saw.
	rep := r.analyse()
	rep.print(out, r)
	if phaseErr != nil {
		return rep.failed, phaseErr
	}
	log.Info("chaos run done", "took", r.clk.now().Round(time.Millisecond), "failed", rep.failed)
	return rep.failed, nil
}

// buildGatehouse builds the server once, as the image does (no cgo).
func buildGatehouse(ctx context.Context, log *slog.Logger, dir string) (string, error) {
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	bin := filepath.Join(dir, "gatehouse")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-o", bin, "github.com/gatehouse-authz/gatehouse/cmd/gatehouse")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build gatehouse: %w: %s", err, b)
	}
	log.Info("gatehouse built", "took", time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// copyLogs copies the children's logs to dst for a look after the run.
func copyLogs(log *slog.Logger, src, dst string) {
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".log" {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		log.Warn("copy logs", "error", err.Error())
		return
	}
	log.Info("logs copied", "dir", dst)
}
