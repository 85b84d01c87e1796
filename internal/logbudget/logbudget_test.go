package logbudget

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestBudgetPerSecond(t *testing.T) {
	b := New(3)
	allowed := 0
	for i := range 10 {
		ok, s := b.Allow(t0.Add(time.Duration(i) * 50 * time.Millisecond))
		if ok {
			allowed++
		}
		if s.Lines != 0 {
			t.Fatalf("call %d reports %d suppressed lines within the first second", i, s.Lines)
		}
	}
	if allowed != 3 {
		t.Fatalf("allowed %d lines in one second, budget 3", allowed)
	}

	// The next second: allowed again, and told what the last one dropped.
	ok, s := b.Allow(t0.Add(1500 * time.Millisecond))
	if !ok {
		t.Fatal("a new second's first line was refused")
	}
	if s.Lines != 7 || !s.Since.Equal(t0) {
		t.Fatalf("suppressed = %+v, want 7 lines since %v", s, t0)
	}
	// Reported once only.
	if _, s := b.Allow(t0.Add(1600 * time.Millisecond)); s.Lines != 0 {
		t.Fatalf("suppressed lines reported twice: %+v", s)
	}
	// A second with nothing dropped reports nothing.
	if _, s := b.Allow(t0.Add(5 * time.Second)); s.Lines != 0 {
		t.Fatalf("a second without drops reports %+v", s)
	}
}

func TestBudgetNegativeAllowsNothing(t *testing.T) {
	if n := New(0).perSecond; n != DefaultPerSecond {
		t.Fatalf("New(0) budget = %d, want the default %d", n, DefaultPerSecond)
	}
	b := New(-1)
	for i := range 5 {
		if ok, _ := b.Allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatal("a negative budget allowed a line")
		}
	}
	if _, s := b.Allow(t0.Add(time.Second)); s.Lines != 5 {
		t.Fatalf("suppressed = %+v, want 5 lines", s)
	}
}

// TestBudgetConcurrent: under -race, many goroutines in one second get
// exactly the budget between them, and every other call is counted.
func TestBudgetConcurrent(t *testing.T) {
	b := New(100)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 1000 {
				if ok, _ := b.Allow(t0.Add(time.Millisecond)); ok {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("allowed %d lines, budget 100", allowed)
	}
	if _, s := b.Allow(t0.Add(2 * time.Second)); s.Lines != 8000-100 {
		t.Fatalf("suppressed = %d lines, want %d", s.Lines, 8000-100)
	}
}

func BenchmarkAllow(b *testing.B) {
	bud := New(100)
	now := t0
	for b.Loop() {
		bud.Allow(now)
	}
}

// TestEnabled: below Debug, lines share the budget and the count of dropped
// ones is logged once the next second opens; at Debug every line passes; a
// level the logger does not write takes nothing from the budget.
func TestEnabled(t *testing.T) {
	var buf testkit.LogBuffer
	ctx := context.Background()
	info := testkit.NewLoggerAt(&buf, slog.LevelInfo)
	b := New(2)
	now := t0
	b.now = func() time.Time { return now }

	for range 5 {
		if b.Enabled(ctx, info, slog.LevelDebug) {
			t.Fatal("a Debug line is enabled on an Info logger")
		}
	}
	got := 0
	for range 5 {
		if b.Enabled(ctx, info, slog.LevelInfo) {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("%d Info lines enabled in one second, budget 2", got)
	}
	if buf.String() != "" {
		t.Fatalf("logged before the second ended: %s", buf.String())
	}
	now = now.Add(time.Second)
	if !b.Enabled(ctx, info, slog.LevelWarn) {
		t.Fatal("the first line of a new second is refused")
	}
	lines := buf.Lines(t)
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["lines"] != float64(3) || lines[0]["budget_per_second"] != float64(2) {
		t.Fatalf("suppressed-lines report = %s", buf.String())
	}

	debug := testkit.NewLogger(&buf)
	for range 10 {
		if !b.Enabled(ctx, debug, slog.LevelInfo) {
			t.Fatal("a Debug logger's line was refused by the budget")
		}
	}
}
