package oidc

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestProviderConnectionsBounded: a burst of distinct tokens (new users at
// once, or a client sending garbage) opens at most maxProviderConns
// connections to the provider and never has more introspections in flight
// there; every caller still gets its answer, and the connections are
// reused afterwards.
func TestProviderConnectionsBounded(t *testing.T) {
	var inFlight, peak atomic.Int64
	var mu sync.Mutex
	conns := map[string]bool{}
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		jsonAnswer(activeClaims(t0))(w, r)
	}, func(c *Config) { c.Timeout = 10 * time.Second })

	const callers = 3 * maxProviderConns
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := f.in.Introspect(context.Background(), fmt.Sprintf("burst-token-%03d", i))
			if err == nil && !v.Active {
				err = fmt.Errorf("token %d refused", i)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := peak.Load(); p > maxProviderConns {
		t.Fatalf("%d introspections in flight at the provider, want at most %d", p, maxProviderConns)
	}
	mu.Lock()
	opened := len(conns)
	mu.Unlock()
	if opened > maxProviderConns {
		t.Fatalf("%d connections opened to the provider, want at most %d", opened, maxProviderConns)
	}
	// A second burst reuses them.
	for i := range maxProviderConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = f.in.Introspect(context.Background(), fmt.Sprintf("second-burst-%03d", i))
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(conns) > maxProviderConns {
		t.Fatalf("%d connections after a second burst, want the first %d reused", len(conns), opened)
	}
}
