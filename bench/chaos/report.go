package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// shutdownRace excuses a check sent this little before SIGTERM that fails:
// it may not have reached gatehouse before the listener closed. A
// forward-auth check's bytes may still sit unread on a keep-alive
// connection that net/http's Shutdown closes as idle (the client's retry
// then meets the closed listener); a gRPC check may still be queued in the
// client when the server's GOAWAY arrives, and then goes to a new
// connection that cannot be made. On a busy machine either takes a few
// scheduling delays; the sigterm phase stalls Redis 200 ms before the
// signal, so checks sent between 200 and 100 ms before it are in flight in
// gatehouse and must be answered.
const shutdownRace = 100 * time.Millisecond

// maxExamples is how many examples of each failure a phase lists.
const maxExamples = 4

// row is one phase's figures.
type row struct {
	pm                       phaseMark
	end                      time.Duration
	requests                 int
	allow, deny, s503        int
	errors, refused          int // transport errors: failures, or excused after SIGTERM
	wrongful, unexpected503  int
	inflight                 int // checks in flight at SIGTERM that were answered
	logs                     map[string]int
	wrongEx, s503Ex, errorEx []string
}

func (rw *row) failed() bool {
	return rw.wrongful > 0 || rw.unexpected503 > 0 || rw.errors > 0 || len(rw.pm.fails) > 0
}

type report struct {
	rows   []*row
	failed bool
}

// analyse judges every sample against its deployment's model.
func (r *runner) analyse() *report {
	rep := &report{}
	for i, pm := range r.phaseMarks {
		end := r.end
		if i+1 < len(r.phaseMarks) {
			end = r.phaseMarks[i+1].start
		}
		rep.rows = append(rep.rows, &row{pm: pm, end: end, logs: map[string]int{}})
	}
	phaseOf := func(t time.Duration) *row {
		i := sort.Search(len(rep.rows), func(i int) bool { return rep.rows[i].pm.start > t }) - 1
		if i < 0 {
			return nil
		}
		return rep.rows[i]
	}
	samples := r.load.samples
	sort.Slice(samples, func(i, j int) bool { return samples[i].t0 < samples[j].t0 })
	for _, s := range samples {
		rw := phaseOf(s.t0)
		if rw == nil {
			continue
		}
		tg := r.targets[s.target]
		m := tg.dep.model
		u := int(s.user)
		rw.requests++
		stop := time.Duration(tg.stopAt.Load())
		switch s.out {
		case oAllow:
			rw.allow++
			if !m.mayAllow(u, s.t0, s.t1) {
				rw.wrongful++
				if len(rw.wrongEx) < maxExamples {
					rw.wrongEx = append(rw.wrongEx, r.describe(s, rw, m, "allowed")+"; "+r.whyWrongful(m, u, s.t0))
				}
			}
		case oDeny:
			rw.deny++
		case o503:
			rw.s503++
			if m.unexpected503(u, s.t0, s.t1) {
				rw.unexpected503++
				if len(rw.s503Ex) < maxExamples {
					rw.s503Ex = append(rw.s503Ex, r.describe(s, rw, m, "503")+"; "+r.whyReadable(m, u, s.t0))
				}
			}
		case oError:
			if stop >= 0 && s.t0 >= stop-shutdownRace {
				rw.refused++
			} else {
				rw.errors++
			}
		}
		if stop >= 0 && s.t0 < stop && s.t1 > stop && s.out != oError {
			rw.inflight++
		}
	}
	for _, e := range r.load.errs {
		rw := phaseOf(e.t0)
		if rw == nil || len(rw.errorEx) >= maxExamples {
			continue
		}
		stop := time.Duration(r.targets[e.target].stopAt.Load())
		if stop >= 0 && e.t0 >= stop-shutdownRace {
			continue
		}
		rw.errorEx = append(rw.errorEx, fmt.Sprintf("+%s %s: %s", rel(e.t0, rw), listenerName(e.http), e.err))
	}
	for _, ev := range r.logs.events() {
		// A log line belongs to the phase whose target wrote it.
		if rw := phaseOf(ev.t); rw != nil && rw.pm.target == ev.target {
			rw.logs[ev.what]++
		}
	}
	for _, rw := range rep.rows {
		if rw.pm.name == "sigterm" && rw.inflight == 0 {
			rw.pm.fails = append(rw.pm.fails, "no check was in flight when SIGTERM landed: the in-flight check proved nothing")
		}
		if rw.failed() {
			rep.failed = true
		}
	}
	return rep
}

func listenerName(http bool) string {
	if http {
		return "http"
	}
	return "grpc"
}

func rel(t time.Duration, rw *row) string {
	return (t - rw.pm.start).Round(time.Millisecond).String()
}

// describe names a sample for an example line.
func (r *runner) describe(s sample, rw *row, m *model, what string) string {
	u := &r.pop.users[s.user]
	shard := ""
	if len(m.outages) > 1 {
		shard = fmt.Sprintf(" (shard %d)", m.shardOf[s.user])
	}
	st, sure := m.stateAt(int(s.user), s.t0)
	state := st.String()
	if !sure {
		state = "being written"
	}
	return fmt.Sprintf("+%s %s %s %s%s %s after %s; record %s", rel(s.t0, rw), listenerName(s.http), u.kind, u.id, shard,
		what, (s.t1 - s.t0).Round(time.Millisecond), state)
}

func (r *runner) whyWrongful(m *model, u int, t0 time.Duration) string {
	last := m.lastActiveEnd(u, t0)
	if last < 0 {
		return "never active"
	}
	return fmt.Sprintf("last active %s before the check (bound %s, %s after a published change)",
		(t0 - last).Round(time.Millisecond), m.b.Stale, m.b.Invalidation)
}

func (r *runner) whyReadable(m *model, u int, t0 time.Duration) string {
	last := m.lastUnreadableEnd(u, t0)
	if last < 0 {
		return "readable all along"
	}
	return fmt.Sprintf("readable for %s (allowance %s)", (t0 - last).Round(time.Millisecond), m.b.Recovery)
}

func (rep *report) print(w io.Writer, r *runner) {
	b := runBounds()
	fmt.Fprintf(w, "\nchaos run: %d checks over %s; bounds: allow within %s of the record being active (%s after a published change), 503 excused up to %s after the record is readable again\n\n",
		len(r.load.samples), r.end.Round(time.Millisecond), b.Stale, b.Invalidation, b.Recovery)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tgatehouse\tsecs\trequests\tallow\tdeny\t503\terrors\trefused\twrongful allows\tunexpected 503s\tcircuit opens\tstale served\tresubscribed\tverdict\t")
	for _, rw := range rep.rows {
		verdict := "ok"
		if rw.failed() {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n",
			rw.pm.name, r.targets[rw.pm.target].name, (rw.end - rw.pm.start).Seconds(), rw.requests,
			rw.allow, rw.deny, rw.s503, rw.errors, rw.refused, rw.wrongful, rw.unexpected503,
			rw.logs["circuit-open"], rw.logs["stale"], rw.logs["resubscribed"], verdict)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nrefused: checks sent to a gatehouse after its SIGTERM (expected, not failures).")
	fmt.Fprintln(w, "circuit opens, stale served, resubscribed: gatehouse's log lines saying so (a log budget may hold some back).")
	for _, rw := range rep.rows {
		if rw.pm.name == "sigterm" {
			fmt.Fprintf(w, "sigterm: %d checks in flight when the signal landed, all answered unless listed below\n", rw.inflight)
		}
	}

	fmt.Fprintln(w, "\ntime line:")
	for _, e := range r.events {
		fmt.Fprintf(w, "  %8s  %s\n", e.t.Round(time.Millisecond), e.what)
	}
	for _, rw := range rep.rows {
		if !rw.failed() {
			continue
		}
		fmt.Fprintf(w, "\nFAIL %s (times relative to the phase's start):\n", rw.pm.name)
		for _, f := range rw.pm.fails {
			fmt.Fprintf(w, "  %s\n", f)
		}
		list := func(title string, n int, ex []string) {
			if n == 0 {
				return
			}
			fmt.Fprintf(w, "  %d %s, e.g.:\n", n, title)
			for _, e := range ex {
				fmt.Fprintf(w, "    %s\n", e)
			}
		}
		list("wrongful allows", rw.wrongful, rw.wrongEx)
		list("unexpected 503s", rw.unexpected503, rw.s503Ex)
		list("transport errors or answers outside the contract", rw.errors, rw.errorEx)
		if byKind := rw.unexpectedByKind(r); byKind != "" {
			fmt.Fprintf(w, "  unexpected 503s by user kind: %s\n", byKind)
		}
	}
	if rep.failed {
		fmt.Fprintln(w, "\nchaos run: FAIL")
	} else {
		fmt.Fprintln(w, "\nchaos run: ok")
	}
}

// unexpectedByKind counts a phase's unexpected 503s by user kind (and
// shard), to tell a fault spreading to other users from one that stays put.
func (rw *row) unexpectedByKind(r *runner) string {
	if rw.unexpected503 == 0 {
		return ""
	}
	counts := map[string]int{}
	for _, s := range r.load.samples {
		if s.out != o503 || s.t0 < rw.pm.start || s.t0 >= rw.end {
			continue
		}
		m := r.targets[s.target].dep.model
		if !m.unexpected503(int(s.user), s.t0, s.t1) {
			continue
		}
		k := r.pop.users[s.user].kind.String()
		if len(m.outages) > 1 {
			k += fmt.Sprintf("/shard %d", m.shardOf[s.user])
		}
		counts[k]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}
