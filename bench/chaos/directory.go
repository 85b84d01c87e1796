package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// writer changes the records of one deployment as an operator would, and
// records each change in the deployment's model with the window of the
// call. Every write goes through mu, so that the model's changes of a user
// are in time order and the flip loop never races the phase's own writes.
type writer struct {
	d   *deployment
	pop *population
	clk clock

	mu         sync.Mutex
	flipsOn    bool
	flipActive map[int]bool
	flipNext   int
}

func newWriter(d *deployment, pop *population, clk clock) *writer {
	w := &writer{d: d, pop: pop, clk: clk, flipActive: map[int]bool{}}
	for _, u := range pop.byKind[kFlip] {
		w.flipActive[u] = true
	}
	return w
}

// specOf is the state user u is seeded with now.
func (w *writer) specOf(u int) recState {
	if w.pop.users[u].kind == kFlip {
		if w.flipActive[u] {
			return stActive
		}
		return stInactive
	}
	return w.pop.users[u].kind.spec()
}

// queueRecord queues the commands that give key the state st.
func queueRecord(ctx context.Context, pipe redis.Pipeliner, key string, st recState, variant int) {
	pipe.Del(ctx, key)
	switch st {
	case stActive:
		pipe.HSet(ctx, key, "active", "1")
	case stInactive:
		pipe.HSet(ctx, key, "active", "0")
	case stWrongType:
		switch variant % 4 {
		case 0:
			pipe.Set(ctx, key, "1", 0)
		case 1:
			pipe.RPush(ctx, key, "active", "1")
		case 2:
			pipe.SAdd(ctx, key, "active")
		default:
			pipe.ZAdd(ctx, key, redis.Z{Score: 1, Member: "active"})
		}
	}
}

// set writes the states of users (sts[i] for users[i]) and, when publish is
// set, then publishes one invalidation message per user.
func (w *writer) set(ctx context.Context, users []int, sts []recState, publish bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.setLocked(ctx, users, sts, publish)
}

func (w *writer) setLocked(ctx context.Context, users []int, sts []recState, publish bool) error {
	queue := func(pipe redis.Pipeliner) error {
		for i, u := range users {
			queueRecord(ctx, pipe, w.pop.users[u].key(), sts[i], i)
		}
		return nil
	}
	start := w.clk.now()
	var err error
	if w.d.kind == cluster {
		// A Cluster refuses a transaction over several slots: the records
		// are written one command after the other, so a record may be
		// briefly missing within the write's window, which the model
		// allows for.
		_, err = w.d.rdb.Pipelined(ctx, queue)
	} else {
		_, err = w.d.rdb.TxPipelined(ctx, queue)
	}
	end := w.clk.now()
	if err != nil {
		for _, u := range users {
			w.d.model.record(u, change{start: start, end: end, st: stUncertain})
		}
		return fmt.Errorf("%s: write %d records: %w", w.d.kind, len(users), err)
	}
	published, pubEnd := false, end
	if publish {
		_, perr := w.d.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, u := range users {
				pipe.Publish(ctx, channel, "user:"+w.pop.users[u].id)
			}
			return nil
		})
		published, pubEnd = perr == nil, w.clk.now()
	}
	for i, u := range users {
		w.d.model.record(u, change{start: start, end: end, st: sts[i], published: published, pubEnd: pubEnd})
	}
	return nil
}

// seed writes every user's spec state, without invalidation messages.
func (w *writer) seed(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	users := make([]int, len(w.pop.users))
	sts := make([]recState, len(users))
	for u := range users {
		users[u], sts[u] = u, w.specOf(u)
	}
	return w.setLocked(ctx, users, sts, false)
}

// flush runs FLUSHALL (on every master of a Cluster).
func (w *writer) flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := w.clk.now()
	var err error
	if cc, ok := w.d.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
	} else {
		err = w.d.rdb.FlushAll(ctx).Err()
	}
	end := w.clk.now()
	st := stMissing
	if err != nil {
		st = stUncertain
	}
	for u := range w.pop.users {
		w.d.model.record(u, change{start: start, end: end, st: st})
	}
	if err != nil {
		return fmt.Errorf("FLUSHALL: %w", err)
	}
	return nil
}

// lose records that every record was lost over [start, end]: Redis was
// killed and comes back empty (no persistence).
func (w *writer) lose(start, end time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for u := range w.pop.users {
		w.d.model.record(u, change{start: start, end: end, st: stMissing})
	}
}

// setFlips turns the flip loop on or off; it returns once no flip is in
// progress.
func (w *writer) setFlips(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flipsOn = on
}

// flip disables or enables the next flip user, then publishes the change.
func (w *writer) flip(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	flips := w.pop.byKind[kFlip]
	if !w.flipsOn || len(flips) == 0 {
		return
	}
	u := flips[w.flipNext%len(flips)]
	w.flipNext++
	want := !w.flipActive[u]
	st := stInactive
	if want {
		st = stActive
	}
	// The flip loop's own writes: one HSET, as `gatehouse users
	// disable|enable` does, then PUBLISH.
	key := w.pop.users[u].key()
	start := w.clk.now()
	v := "0"
	if want {
		v = "1"
	}
	err := w.d.rdb.HSet(ctx, key, "active", v).Err()
	end := w.clk.now()
	if err != nil {
		w.d.model.record(u, change{start: start, end: end, st: stUncertain})
		return
	}
	w.flipActive[u] = want
	perr := w.d.rdb.Publish(ctx, channel, "user:"+w.pop.users[u].id).Err()
	w.d.model.record(u, change{start: start, end: end, st: st, published: perr == nil, pubEnd: w.clk.now()})
}
