package main

import (
	"os"
	"testing"
	"time"
)

func TestListeningLines(t *testing.T) {
	if a, ok := jsonListening(`{"time":"x","level":"INFO","msg":"listening","grpc":"127.0.0.1:4242","ops":"127.0.0.1:1"}`); !ok || a != "127.0.0.1:4242" {
		t.Errorf("jsonListening = %q, %v", a, ok)
	}
	for _, line := range []string{`{"msg":"starting gatehouse"}`, `not json`, `{"msg":"listening"}`} {
		if _, ok := jsonListening(line); ok {
			t.Errorf("jsonListening(%q) matched", line)
		}
	}
	if a, ok := textListening("listening 127.0.0.1:5"); !ok || a != "127.0.0.1:5" {
		t.Errorf("textListening = %q, %v", a, ok)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	// Only errors are checked: the amounts depend on the machine.
	if _, err := cpuTime(0); err != nil {
		t.Fatal(err)
	}
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if kib, err := statusKiB(os.Getpid(), "VmHWM"); err != nil || kib <= 0 {
		t.Fatalf("VmHWM = %d, %v", kib, err)
	}
	if _, err := systemBusy(); err != nil {
		t.Fatal(err)
	}
}

func TestParseFlags(t *testing.T) {
	p, err := parseFlags([]string{"-duration", "2s", "-rounds", "3", "-concurrency", "1, 8", "-server-env", "GOGC=50"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Duration != 2*time.Second || p.Rounds != 3 || len(p.Concurrency) != 2 || p.Concurrency[1] != 8 || p.ServerEnv[0] != "GOGC=50" {
		t.Errorf("parsed %+v", p)
	}
	for _, args := range [][]string{{"-rounds", "0"}, {"-concurrency", "0"}, {"-duration", "0s"}, {"-server-env", "nokey"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestMedianAndRatio(t *testing.T) {
	r := newRow("hot", 64)
	for _, v := range []float64{100, 300, 200} {
		r.add("gatehouse", measurement{ChecksPerSec: v, P99us: v, PeakRSSMiB: v / 10, RedisCalls: 1})
		r.add("noop", measurement{ChecksPerSec: 2 * v, P99us: v, PeakRSSMiB: 1})
	}
	r.finish()
	g := r.Servers["gatehouse"]
	if g.ChecksPerSec != 200 || g.PeakRSSMiB != 30 || g.RedisCalls != 3 {
		t.Errorf("gatehouse summary %+v", g)
	}
	if r.Ratio.ChecksPerSec != 0.5 || r.Ratio.P99 != 1 {
		t.Errorf("ratio %+v", r.Ratio)
	}
}
