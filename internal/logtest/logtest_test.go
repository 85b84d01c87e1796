package logtest

import (
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
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
