// Package logbudget caps how many lines per second a request path logs.
//
// gatehouse logs every deny at Info so that the decision id a client got in
// x-gatehouse-decision-id leads to a log line. A flood of forged or expired
// tokens must not turn that into the bottleneck, or into gigabytes of logs:
// past the budget, lines are counted instead of written, and the count is
// reported with the first line asked for in a later second.
package logbudget

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultPerSecond is the budget of the adapters' decision lines unless
// their options say otherwise: enough to follow a trickle of refusals line
// by line, a few KiB/s of logs at most.
const DefaultPerSecond = 100

// Budget allows up to a fixed number of lines per wall-clock second. The
// zero value is not usable; call New. It is safe for concurrent use.
type Budget struct {
	perSecond int
	now       func() time.Time // the clock of Enabled; tests replace it

	mu      sync.Mutex
	second  int64     // the Unix second being counted
	started time.Time // when that second's first line was asked for
	used    int
	dropped int
}

// New returns a Budget of perSecond lines a second: 0 selects
// DefaultPerSecond, a negative budget allows nothing.
func New(perSecond int) *Budget {
	switch {
	case perSecond == 0:
		perSecond = DefaultPerSecond
	case perSecond < 0:
		perSecond = 0
	}
	return &Budget{perSecond: perSecond, now: time.Now}
}

// Enabled reports whether a line at level is to be written to log now.
//
// Every line passes when log is enabled for Debug: whoever turns debug
// logging on asks for all of them. Otherwise a line that log would write
// takes one unit of the budget, and when a second that dropped lines is
// over, Enabled first writes one Warn line saying how many (it is written
// when the next line is asked for, so after a flood stops it waits for the
// next request that logs).
func (b *Budget) Enabled(ctx context.Context, log *slog.Logger, level slog.Level) bool {
	if !log.Enabled(ctx, level) {
		return false
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		return true
	}
	ok, s := b.Allow(b.now())
	if s.Lines > 0 {
		log.LogAttrs(ctx, slog.LevelWarn, "log lines suppressed: over the per-second budget",
			slog.Int("lines", s.Lines),
			slog.Time("since", s.Since),
			slog.Int("budget_per_second", b.perSecond),
		)
	}
	return ok
}

// Suppressed is what a Budget held back in an earlier second.
type Suppressed struct {
	Lines int       // lines not written
	Since time.Time // when the second that dropped them began to be counted
}

// Allow reports whether a line may be written at now. When now opens a new
// second after one that dropped lines, s says how many, so that the caller
// logs it (once: the next call reports nothing).
func (b *Budget) Allow(now time.Time) (ok bool, s Suppressed) {
	sec := now.Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	if sec != b.second {
		s = Suppressed{Lines: b.dropped, Since: b.started}
		b.second, b.started, b.used, b.dropped = sec, now, 0, 0
	}
	if b.used < b.perSecond {
		b.used++
		return true, s
	}
	b.dropped++
	return false, s
}
