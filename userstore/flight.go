package userstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// flights is the miss path Cache and SubjectCache share: one origin load
// per key however many callers wait, run detached from any one caller (the
// first giving up must not fail the others) and bounded by its own
// timeout, and a guard so that an answer read before an invalidation is
// not stored after it.
type flights struct {
	group   singleflight.Group
	timeout time.Duration
	// gen counts invalidations. A load's answer is stored only if no
	// invalidation happened while it was in flight: otherwise an answer
	// read before a change could be cached after the change's
	// invalidation.
	gen atomic.Uint64
}

// errOriginPanicked is a load whose origin panicked.
var errOriginPanicked = errors.New("userstore: the directory origin panicked")

// invalidated records an invalidation of key ("" for all): loads in flight
// are not stored, and new callers do not join a flight that started before.
func (f *flights) invalidated(key string) {
	f.gen.Add(1)
	if key != "" {
		f.group.Forget(key)
	}
}

// load returns what fetch answers for key: fetch runs once for every caller
// waiting on key, and store keeps its answer unless an invalidation landed
// while it ran (forget undoes a store an invalidation raced). done is true
// when the caller's ctx ended first; err is then ctx's error.
func load[V any](ctx context.Context, f *flights, key string, fetch func(context.Context) (V, error), store func(V), forget func()) (v V, done bool, err error) {
	detached := context.WithoutCancel(ctx)
	ch := f.group.DoChan(key, func() (_ any, err error) {
		defer func() {
			// singleflight re-raises a panic of a DoChan function in a
			// goroutine of its own, where nothing can recover it: the
			// process would die. It is this load's error instead (its
			// value is not kept: it may hold a record).
			if p := recover(); p != nil {
				err = errOriginPanicked
			}
		}()
		gen := f.gen.Load()
		fctx, cancel := context.WithTimeout(detached, f.timeout)
		defer cancel()
		v, err := fetch(fctx)
		if err != nil {
			return v, err
		}
		if f.gen.Load() == gen {
			store(v)
			// An invalidation may have landed between the check and the
			// store; it bumped gen first, so re-checking closes the gap.
			if f.gen.Load() != gen {
				forget()
			}
		}
		return v, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return v, false, r.Err
		}
		return r.Val.(V), false, nil
	case <-ctx.Done():
		return v, true, ctx.Err()
	}
}
