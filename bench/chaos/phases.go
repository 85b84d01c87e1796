package main

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

// flipEvery is the pause between two flips (each flip user changes every
// len(flip users) flips).
const flipEvery = time.Second

// runner holds the run's processes, the load and the phases' record.
type runner struct {
	log  *slog.Logger
	clk  clock
	plan plan
	ps   *proc.Group
	pop  *population

	deps    [3]*deployment
	writers [3]*writer
	targets [3]*target
	load    *loader
	logs    *logWatch

	phaseMarks []phaseMark
	events     []event
	end        time.Duration
}

// phaseMark is one phase: its name, the gatehouse it loads, when it
// started, and failures found by the phase itself (not by the oracle).
type phaseMark struct {
	name   string
	target int
	start  time.Duration
	fails  []string
}

// event is one step the driver took, for the report's time line.
type event struct {
	t     time.Duration
	phase int
	what  string
}

func (r *runner) setup(ctx context.Context, redisBin, ghBin string) error {
	var g errgroup.Group
	starts := [3]func(context.Context, *proc.Group, string) (*deployment, error){startStandalone, startSentinel, startCluster}
	for k, start := range starts {
		g.Go(func() error {
			d, err := start(ctx, r.ps, redisBin)
			r.deps[k] = d
			if err != nil {
				return fmt.Errorf("start %s Redis: %w", deployKind(k), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	b := runBounds()
	r.logs = &logWatch{clk: r.clk}
	for k, d := range r.deps {
		d.model = newModel(d.kind.String(), len(r.pop.users), d.shards(), b,
			func(u int) int { return d.shardOfKey(r.pop.users[u].key()) })
		r.writers[k] = newWriter(d, r.pop, r.clk)
		if err := r.writers[k].seed(ctx); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	for k, d := range r.deps {
		t, err := startGatehouse(ctx, r.ps, ghBin, k, d, r.writers[k], r.logs)
		if err != nil {
			return err
		}
		r.targets[k] = t
	}
	return nil
}

func (r *runner) close() {
	for _, t := range r.targets {
		if t != nil {
			t.close()
		}
	}
	for _, d := range r.deps {
		if d != nil {
			d.close()
		}
	}
}

// flipLoop flips the current target's flip users until ctx is done.
func (r *runner) flipLoop(ctx context.Context) {
	tick := time.NewTicker(flipEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if tg := r.load.cur.Load(); tg != nil {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			tg.w.flip(wctx)
			cancel()
		}
	}
}

// begin starts a phase: the load moves to target, whose flips start.
func (r *runner) begin(name string, target int) {
	r.phaseMarks = append(r.phaseMarks, phaseMark{name: name, target: target, start: r.clk.now()})
	for k, w := range r.writers {
		w.setFlips(k == target)
	}
	r.load.cur.Store(r.targets[target])
	r.event("phase %s begins, load on the %s gatehouse", name, r.targets[target].name)
}

func (r *runner) event(format string, args ...any) {
	e := event{t: r.clk.now(), phase: len(r.phaseMarks) - 1, what: fmt.Sprintf(format, args...)}
	r.events = append(r.events, e)
	r.log.Info(e.what, "t", e.t.Round(time.Millisecond))
}

// fail records a failure the phase found itself.
func (r *runner) fail(format string, args ...any) {
	pm := &r.phaseMarks[len(r.phaseMarks)-1]
	pm.fails = append(pm.fails, fmt.Sprintf(format, args...))
	r.event("FAILURE: "+format, args...)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("chaos run deadline or interrupt: %w", context.Cause(ctx))
	case <-t.C:
		return nil
	}
}

// phases runs every phase in order.
func (r *runner) phases(ctx context.Context) error {
	for _, ph := range []func(context.Context) error{
		r.baseline, r.stall, r.restartEmpty, r.flushAll, r.wrongTypes, r.sigterm,
		r.sentinelFailover, r.clusterFailover,
	} {
		if err := ph(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) baseline(ctx context.Context) error {
	r.begin("baseline", int(standalone))
	return sleep(ctx, r.plan.Baseline)
}

// standaloneOutage runs a fault on of the standalone deployment: the outage
// opens just before act and closes once Redis answers PING after repair.
func (r *runner) standaloneOutage(ctx context.Context, what string, act, repair func() error) error {
	d, w := r.deps[standalone], r.writers[standalone]
	w.setFlips(false)
	d.model.outageStart(0, r.clk.now(), what)
	if err := act(); err != nil {
		return err
	}
	if err := repair(); err != nil {
		return err
	}
	if err := d.node.waitPing(ctx, 5*time.Second); err != nil {
		return err
	}
	d.model.outageEnd(0, r.clk.now())
	r.event("redis answers again")
	return nil
}

func (r *runner) stall(ctx context.Context) error {
	r.begin("redis-stalled", int(standalone))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	n := r.deps[standalone].node
	err := r.standaloneOutage(ctx, "SIGSTOP",
		func() error {
			if err := n.signal(syscall.SIGSTOP); err != nil {
				return err
			}
			r.event("redis stalled (SIGSTOP) for %s", r.plan.Stall)
			return sleep(ctx, r.plan.Stall)
		},
		func() error {
			if err := n.signal(syscall.SIGCONT); err != nil {
				return err
			}
			r.event("redis resumed (SIGCONT)")
			return nil
		})
	if err != nil {
		return err
	}
	r.writers[standalone].setFlips(true)
	return sleep(ctx, r.plan.Post)
}

func (r *runner) restartEmpty(ctx context.Context) error {
	r.begin("redis-restarted-empty", int(standalone))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	n, w := r.deps[standalone].node, r.writers[standalone]
	err := r.standaloneOutage(ctx, "killed",
		func() error {
			start := r.clk.now()
			if err := n.kill(); err != nil {
				return err
			}
			w.lose(start, r.clk.now())
			r.event("redis killed (SIGKILL), down for %s", r.plan.Down)
			return sleep(ctx, r.plan.Down)
		},
		func() error {
			if err := n.launch(ctx); err != nil {
				return err
			}
			r.event("redis restarted empty on the same port")
			return nil
		})
	if err != nil {
		return err
	}
	if err := r.reseed(ctx); err != nil {
		return err
	}
	return sleep(ctx, r.plan.Post)
}

// reseed waits plan.ReseedAfter, then writes every record again and turns
// the flips back on.
func (r *runner) reseed(ctx context.Context) error {
	if err := sleep(ctx, r.plan.ReseedAfter); err != nil {
		return err
	}
	w := r.writers[standalone]
	if err := w.seed(ctx); err != nil {
		return err
	}
	r.event("records written again")
	w.setFlips(true)
	return nil
}

func (r *runner) flushAll(ctx context.Context) error {
	r.begin("flushall", int(standalone))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	w := r.writers[standalone]
	w.setFlips(false)
	if err := w.flush(ctx); err != nil {
		return err
	}
	r.event("FLUSHALL: every record gone")
	if err := r.reseed(ctx); err != nil {
		return err
	}
	return sleep(ctx, r.plan.PostHealthy)
}

func (r *runner) wrongTypes(ctx context.Context) error {
	r.begin("wrong-typed-keys", int(standalone))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	w := r.writers[standalone]
	var victims []int
	victims = append(victims, r.pop.byKind[kHotActive][:4]...)
	victims = append(victims, r.pop.byKind[kDisabled][:4]...)
	// Two cold users in three: enough failing lookups in a row that a
	// circuit counting them opens within the phase, and a third left whose
	// lookups still reach Redis and show what that does to everyone else.
	for i, u := range r.pop.byKind[kColdActive] {
		if i%3 != 0 {
			victims = append(victims, u)
		}
	}
	sts := make([]recState, len(victims))
	for i := range sts {
		sts[i] = stWrongType
	}
	if err := w.set(ctx, victims, sts, false); err != nil {
		return err
	}
	r.event("%d records replaced by strings, lists, sets and sorted sets", len(victims))
	if err := sleep(ctx, r.plan.Hold); err != nil {
		return err
	}
	for i, u := range victims {
		sts[i] = w.specOf(u)
	}
	if err := w.set(ctx, victims, sts, true); err != nil {
		return err
	}
	r.event("records restored and invalidations published")
	return sleep(ctx, r.plan.PostHealthy)
}

// sigterm sends SIGTERM to the standalone gatehouse under load, with Redis
// stalled around the signal so that checks are in flight when it lands
// (each waits for its Redis timeout), and with users disabled just before.
func (r *runner) sigterm(ctx context.Context) error {
	r.begin("sigterm", int(standalone))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	d, w, tg := r.deps[standalone], r.writers[standalone], r.targets[standalone]
	disabled := r.pop.byKind[kHotActive][4:8]
	sts := []recState{stInactive, stInactive, stInactive, stInactive}
	if err := w.set(ctx, disabled, sts, true); err != nil {
		return err
	}
	r.event("%d hot users disabled and published", len(disabled))
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return err
	}
	w.setFlips(false)
	d.model.outageStart(0, r.clk.now(), "SIGSTOP around SIGTERM")
	if err := d.node.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	r.event("redis stalled (SIGSTOP) so that checks are in flight")
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	// stopAt is set first: every check sent from now on may be refused.
	tg.stopAt.Store(int64(r.clk.now()))
	if err := tg.gh.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	r.event("gatehouse got SIGTERM")
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return err
	}
	if err := d.node.signal(syscall.SIGCONT); err != nil {
		return err
	}
	if err := d.node.waitPing(ctx, 5*time.Second); err != nil {
		return err
	}
	d.model.outageEnd(0, r.clk.now())
	r.event("redis resumed")
	code, err := tg.gh.WaitExit(ghShutdownTimeout + 3*time.Second)
	switch {
	case err != nil:
		r.fail("gatehouse did not stop: %v", err)
	case code != 0:
		r.fail("gatehouse exited with code %d after SIGTERM, want 0", code)
	default:
		r.event("gatehouse exited 0")
	}
	r.ps.Forget(tg.gh)
	return sleep(ctx, 300*time.Millisecond)
}

// waitFor polls ok every 50 ms until it holds, within failoverTimeout.
func waitFor(ctx context.Context, what string, ok func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, failoverTimeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		done := ok(pctx)
		pcancel()
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: not within %s", what, failoverTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// driverReaches waits until the driver's own client writes again after a
// failover, so that the flips that follow are not all in doubt.
func driverReaches(ctx context.Context, d *deployment) error {
	return waitFor(ctx, "the driver's client reaches the new master", func(ctx context.Context) bool {
		return d.rdb.Set(ctx, "chaos:probe", "1", time.Minute).Err() == nil
	})
}

func (r *runner) sentinelFailover(ctx context.Context) error {
	r.begin("sentinel-failover", int(sentinel))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	d, w := r.deps[sentinel], r.writers[sentinel]
	w.setFlips(false)
	if err := waitSynced(ctx, d.master, d.replica); err != nil {
		return err
	}
	killed := r.clk.now()
	d.model.outageStart(0, killed, "master killed")
	if err := d.master.kill(); err != nil {
		return err
	}
	r.event("sentinel master killed (SIGKILL)")
	if err := waitFor(ctx, "sentinel failover", d.sentinelFailedOver); err != nil {
		return err
	}
	d.model.outageEnd(0, r.clk.now())
	r.event("failover done: the replica is master, %s after the kill", (r.clk.now() - killed).Round(time.Millisecond))
	if err := driverReaches(ctx, d); err != nil {
		return err
	}
	w.setFlips(true)
	return sleep(ctx, r.plan.FailoverPost)
}

func (r *runner) clusterFailover(ctx context.Context) error {
	r.begin("cluster-failover", int(cluster))
	if err := sleep(ctx, r.plan.Pre); err != nil {
		return err
	}
	d, w := r.deps[cluster], r.writers[cluster]
	w.setFlips(false)
	// The master holding the invalidation channel's slot: gatehouse's
	// subscription is most likely on it, so it must move too.
	shard := d.shardOfKey(channel)
	if err := waitSynced(ctx, d.masters[shard], d.replicas[shard]); err != nil {
		return err
	}
	killed := r.clk.now()
	d.model.outageStart(shard, killed, "master killed")
	if err := d.masters[shard].kill(); err != nil {
		return err
	}
	r.event("cluster master of shard %d (slots %d-%d, the invalidation channel's) killed (SIGKILL)",
		shard, d.ranges[shard][0], d.ranges[shard][1])
	if err := waitFor(ctx, "cluster failover", func(ctx context.Context) bool { return d.clusterFailedOver(ctx, shard) }); err != nil {
		return err
	}
	d.model.outageEnd(shard, r.clk.now())
	r.event("failover done: the replica serves shard %d, %s after the kill", shard, (r.clk.now() - killed).Round(time.Millisecond))
	// Learn the new topology now rather than on the first failed write.
	if cc, ok := d.rdb.(*redis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
	if err := driverReaches(ctx, d); err != nil {
		return err
	}
	w.setFlips(true)
	return sleep(ctx, r.plan.FailoverPost)
}
