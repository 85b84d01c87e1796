package testkit

import (
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestFreePortIsBindable(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 || port > 65535 {
		t.Fatalf("port %d", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("the returned port %d cannot be bound: %v", port, err)
	}
	l.Close()
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Fatalf("after Advance: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("after Set: %v", got)
	}
}

func TestWriteFile(t *testing.T) {
	p := WriteFile(t, "users.json", `[{"id":"a"}]`)
	b, err := os.ReadFile(p)
	if err != nil || string(b) != `[{"id":"a"}]` {
		t.Fatalf("read back %q, %v", b, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	log := NewLogger(&b)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { log.Debug("decision", "n", i) })
	}
	wg.Wait()
	lines := b.Lines(t)
	if len(lines) != 8 {
		t.Fatalf("%d lines, want 8:\n%s", len(lines), b.String())
	}
	for _, l := range lines {
		if l["msg"] != "decision" || l["level"] != "DEBUG" {
			t.Fatalf("line %v", l)
		}
	}
}
