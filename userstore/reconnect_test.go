package userstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReconnect checks the loop's bookkeeping: it retries after each
// failure with a doubling, capped wait, starts again from the minimum once a
// connection came up, and returns ctx's error when ctx ends.
func TestReconnect(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const minB, maxB = time.Millisecond, 4 * time.Millisecond
	var waits []time.Duration
	calls := 0
	err := Reconnect(ctx, minB, maxB,
		func(_ context.Context, connected func()) error {
			calls++
			if calls == 5 {
				connected()
			}
			if calls == 7 {
				cancel()
			}
			return errors.New("lost")
		},
		func(err error, wait time.Duration) {
			if err == nil || err.Error() != "lost" {
				t.Errorf("lost got error %v, want the attempt's", err)
			}
			waits = append(waits, wait)
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconnect = %v, want context.Canceled", err)
	}
	// Nominal waits before jitter: 1 2 4 4 | reset | 1 2.
	want := []time.Duration{1, 2, 4, 4, 1, 2}
	if len(waits) != len(want) {
		t.Fatalf("%d waits, want %d: %v", len(waits), len(want), waits)
	}
	for i, w := range want {
		hi := w * time.Millisecond
		if waits[i] > hi || waits[i] < hi-hi/4 {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, waits[i], hi-hi/4, hi)
		}
	}
}

func TestParseChange(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind Kind
		id   string
		ok   bool
	}{
		{"user:abc", User, "abc", true},
		{"app:meet", App, "meet", true},
		{"user:a:b", User, "a:b", true},
		{"user:", 0, "", false},
		{"room:x", 0, "", false},
		{"nocolon", 0, "", false},
		{"", 0, "", false},
	} {
		kind, id, ok := ParseChange(c.in)
		if kind != c.kind || id != c.id || ok != c.ok {
			t.Errorf("ParseChange(%q) = %v %q %v, want %v %q %v", c.in, kind, id, ok, c.kind, c.id, c.ok)
		}
	}
}
