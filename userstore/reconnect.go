package userstore

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"
)

// Reconnect runs once again and again until ctx is done, then returns ctx's
// error. It is the loop behind the origins' change feeds (a LISTEN
// connection, a watch stream), which must come back on their own after any
// failure.
//
// once runs one connection until it fails; it calls connected once the
// connection is in effect, which resets the wait to minBackoff (a feed that
// worked for a while and then broke is retried promptly). After each
// failure lost is told the error and the wait before the next attempt. The
// wait doubles from minBackoff up to maxBackoff and each one is shortened by
// up to a quarter at random, so replicas that lost the same server do not
// reconnect in step.
func Reconnect(ctx context.Context, minBackoff, maxBackoff time.Duration,
	once func(ctx context.Context, connected func()) error,
	lost func(err error, wait time.Duration),
) error {
	backoff := minBackoff
	for {
		err := once(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := jitter(backoff)
		lost(err, wait)
		backoff = min(backoff*2, maxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// jitter returns d shortened by up to a quarter, at random.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// ParseChange reads a change notice as the change feeds carry it:
// "user:<id>" or "app:<client id>", with a non-empty id (which may itself
// contain colons). Anything else is reported as not ok.
func ParseChange(s string) (Kind, string, bool) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok || id == "" {
		return 0, "", false
	}
	switch kind {
	case User.String():
		return User, id, true
	case App.String():
		return App, id, true
	}
	return 0, "", false
}
