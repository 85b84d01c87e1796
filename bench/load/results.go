package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/bench/cachebound"
	"github.com/gatehouse-authz/gatehouse/bench/workload"
)

// measurement is one server's figures for one run.
type measurement struct {
	Checks         int     `json:"checks"`
	ChecksPerSec   float64 `json:"checks_per_s"`
	P50us          float64 `json:"p50_us"`
	P99us          float64 `json:"p99_us"`
	CPUusPerCheck  float64 `json:"server_cpu_us_per_check"`
	ServerCPUCores float64 `json:"server_cpu_cores"`
	ClientCPUus    float64 `json:"client_cpu_us_per_check"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	PeakRSSReset   bool    `json:"peak_rss_reset"`
	RedisCalls     int64   `json:"redis_lookups"`
	RedisPerCheck  float64 `json:"redis_lookups_per_check"`
	OtherCPUPct    float64 `json:"other_processes_cpu_pct"`
}

// summary is one server's row: medians over rounds, peak RSS the maximum,
// Redis lookups the sum.
type summary struct {
	ChecksPerSec  float64       `json:"checks_per_s"`
	P50us         float64       `json:"p50_us"`
	P99us         float64       `json:"p99_us"`
	CPUusPerCheck float64       `json:"server_cpu_us_per_check"`
	PeakRSSMiB    float64       `json:"peak_rss_mib"`
	RedisCalls    int64         `json:"redis_lookups"`
	Rounds        []measurement `json:"rounds"`
}

// ratio is gatehouse divided by the do-nothing server.
type ratio struct {
	ChecksPerSec  float64 `json:"checks_per_s"`
	P50           float64 `json:"p50"`
	P99           float64 `json:"p99"`
	CPUPerCheck   float64 `json:"server_cpu_per_check"`
	PeakRSS       float64 `json:"peak_rss"`
	OtherCPUMedPc float64 `json:"other_processes_cpu_pct_median"`
}

type row struct {
	Scenario    string              `json:"scenario"`
	Concurrency int                 `json:"concurrency"`
	Servers     map[string]*summary `json:"servers"`
	Ratio       ratio               `json:"ratio"`
}

func newRow(scenario string, c int) *row {
	return &row{Scenario: scenario, Concurrency: c, Servers: map[string]*summary{}}
}

func (r *row) add(server string, m measurement) {
	s := r.Servers[server]
	if s == nil {
		s = &summary{}
		r.Servers[server] = s
	}
	s.Rounds = append(s.Rounds, m)
}

func median(ms []measurement, f func(measurement) float64) float64 {
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (r *row) finish() {
	var others []measurement
	for _, s := range r.Servers {
		s.ChecksPerSec = median(s.Rounds, func(m measurement) float64 { return m.ChecksPerSec })
		s.P50us = median(s.Rounds, func(m measurement) float64 { return m.P50us })
		s.P99us = median(s.Rounds, func(m measurement) float64 { return m.P99us })
		s.CPUusPerCheck = median(s.Rounds, func(m measurement) float64 { return m.CPUusPerCheck })
		for _, m := range s.Rounds {
			s.PeakRSSMiB = max(s.PeakRSSMiB, m.PeakRSSMiB)
			s.RedisCalls += m.RedisCalls
		}
		others = append(others, s.Rounds...)
	}
	g, n := r.Servers["gatehouse"], r.Servers["noop"]
	if g == nil || n == nil {
		return
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	r.Ratio = ratio{
		ChecksPerSec:  div(g.ChecksPerSec, n.ChecksPerSec),
		P50:           div(g.P50us, n.P50us),
		P99:           div(g.P99us, n.P99us),
		CPUPerCheck:   div(g.CPUusPerCheck, n.CPUusPerCheck),
		PeakRSS:       div(g.PeakRSSMiB, n.PeakRSSMiB),
		OtherCPUMedPc: median(others, func(m measurement) float64 { return m.OtherCPUPct }),
	}
}

// machine describes where the run happened.
type machine struct {
	CPUs         int    `json:"nproc"`
	CPUModel     string `json:"cpu_model"`
	MemTotal     string `json:"mem_total"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
	Note         string `json:"note"`
}

func describeMachine() machine {
	m := machine{
		CPUs:      runtime.NumCPU(),
		CPUModel:  procField("/proc/cpuinfo", "model name"),
		MemTotal:  procField("/proc/meminfo", "MemTotal"),
		GoVersion: runtime.Version(),
		Note:      "client, gatehouse, the do-nothing server and Redis share the same CPUs; nothing is pinned",
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "unknown"
}

// targetCheck is one of the targets, evaluated.
type targetCheck struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`
	Detail string  `json:"detail,omitempty"`
}

type results struct {
	Generated  time.Time          `json:"generated"`
	Params     params             `json:"params"`
	Machine    machine            `json:"machine"`
	Rows       []*row             `json:"rows"`
	CacheBound *cachebound.Result `json:"cache_bound,omitempty"`
	// InvalidRedisLookups is how many Redis lookups gatehouse made during
	// the invalid-token runs: it must be 0.
	InvalidRedisLookups *int64        `json:"invalid_redis_lookups,omitempty"`
	Targets             []targetCheck `json:"targets"`
}

// check evaluates the targets at concurrency 64 (or the highest measured).
func (r *results) check() {
	r.Generated = time.Now().UTC().Truncate(time.Second)
	top := slices.Max(r.Params.Concurrency)
	find := func(scenario string) *row {
		for _, x := range r.Rows {
			if x.Scenario == scenario && x.Concurrency == top {
				return x
			}
		}
		return nil
	}
	at := fmt.Sprintf(" c=%d", top)
	// The targets of issue 16 (docs/performance.md): gatehouse against the
	// do-nothing server, side by side, at the top concurrency.
	ratio := func(scenario, what string, got float64, atLeast bool, want float64) {
		t := targetCheck{Name: scenario + at + " " + what, Got: got}
		if atLeast {
			t.Want, t.Met = fmt.Sprintf(">= %.2f", want), got >= want
		} else {
			t.Want, t.Met = fmt.Sprintf("<= %.2f", want), got <= want
		}
		r.Targets = append(r.Targets, t)
	}
	if x := find(workload.Hot); x != nil {
		ratio("hot", "checks/s ratio", x.Ratio.ChecksPerSec, true, ratioTargets[workload.Hot])
		ratio("hot", "server CPU per check ratio", x.Ratio.CPUPerCheck, false, 1.00)
		ratio("hot", "p99 ratio", x.Ratio.P99, false, 1.10)
	}
	for _, sc := range []string{workload.Istio, workload.Invalid, workload.Distinct} {
		if x := find(sc); x != nil {
			ratio(sc, "checks/s ratio", x.Ratio.ChecksPerSec, true, ratioTargets[sc])
		}
	}
	var invalid int64
	seenInvalid := false
	rss := 0.0
	for _, x := range r.Rows {
		g := x.Servers["gatehouse"]
		if g == nil {
			continue
		}
		if x.Scenario == workload.Invalid {
			seenInvalid = true
			invalid += g.RedisCalls
		}
		if x.Scenario == workload.Distinct && x.Concurrency == top {
			rss = max(rss, g.PeakRSSMiB)
		}
	}
	if seenInvalid {
		r.InvalidRedisLookups = &invalid
		r.Targets = append(r.Targets, targetCheck{Name: "invalid tokens reaching Redis", Want: "== 0", Got: float64(invalid), Met: invalid == 0})
	}
	if rss > 0 {
		r.Targets = append(r.Targets, targetCheck{Name: "gatehouse peak RSS, distinct" + at + " (MiB)", Want: "<= 32", Got: rss, Met: rss <= 32})
	}
	if cb := r.CacheBound; cb != nil {
		r.Targets = append(r.Targets, targetCheck{Name: fmt.Sprintf("%d users seen: cache entries", cb.Users), Want: fmt.Sprintf("<= %d", cb.Bound),
			Got: float64(cb.Len), Met: cb.Len <= cb.Bound,
			Detail: fmt.Sprintf("%d distinct users looked up; heap %.1f MiB after GC (%.0f B/entry)", cb.Users, cb.HeapMiB, cb.BytesPerEntry)})
	}
}

func (r *results) printTable(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "\nmachine: %d CPUs, %s, %s; load average %s -> %s\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemTotal, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	istio := ""
	if n, ok := r.Params.ScenarioBytes[workload.Istio]; ok {
		istio = fmt.Sprintf(" (istio: %d)", n)
	}
	fmt.Fprintf(bw, "request: %d bytes%s; %s measured + %s warm-up per run, %d rounds, medians; %d connections\n\n",
		r.Params.RequestBytes, istio, r.Params.Duration, r.Params.Warmup, r.Params.Rounds, r.Params.Conns)
	fmt.Fprintf(bw, "%-9s %4s %-9s %9s %9s %9s %10s %8s %8s | %6s %6s %6s %6s %7s\n",
		"scenario", "c", "server", "checks/s", "p50 µs", "p99 µs", "cpu µs/ck", "RSS MiB", "redis/ck",
		"×rate", "×p50", "×p99", "×cpu", "other%")
	for _, x := range r.Rows {
		for i, name := range []string{"gatehouse", "noop"} {
			s := x.Servers[name]
			if s == nil {
				continue
			}
			var redisPer float64
			if n := sumChecks(s.Rounds); n > 0 {
				redisPer = float64(s.RedisCalls) / float64(n)
			}
			fmt.Fprintf(bw, "%-9s %4d %-9s %9.0f %9.0f %9.0f %10.1f %8.1f %8.4f", x.Scenario, x.Concurrency, name,
				s.ChecksPerSec, s.P50us, s.P99us, s.CPUusPerCheck, s.PeakRSSMiB, redisPer)
			if i == 0 {
				fmt.Fprintf(bw, " | %6.2f %6.2f %6.2f %6.2f %6.0f%%", x.Ratio.ChecksPerSec, x.Ratio.P50, x.Ratio.P99, x.Ratio.CPUPerCheck, x.Ratio.OtherCPUMedPc)
			}
			fmt.Fprintln(bw)
		}
	}
	fmt.Fprintln(bw, "\ntargets:")
	for _, t := range r.Targets {
		mark := "met"
		if !t.Met {
			mark = "NOT met"
		}
		fmt.Fprintf(bw, "  %-40s want %-9s got %10.3f  %s", t.Name, t.Want, t.Got, mark)
		if t.Detail != "" {
			fmt.Fprintf(bw, "  (%s)", t.Detail)
		}
		fmt.Fprintln(bw)
	}
}

func sumChecks(ms []measurement) int {
	n := 0
	for _, m := range ms {
		n += m.Checks
	}
	return n
}

func (r *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// cacheBound runs the one-million-users check of the user cache.
func cacheBound(ctx context.Context, users, size int) (cachebound.Result, error) {
	res, err := cachebound.Run(ctx, users, size)
	if err != nil {
		return res, fmt.Errorf("cache bound check: %w", err)
	}
	return res, nil
}
