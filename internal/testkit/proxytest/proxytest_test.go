package proxytest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// get fetches url with a bounded client and returns status and body.
func get(t *testing.T, url string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestNginxProxiesToUpstream(t *testing.T) {
	up := StartUpstream(t)
	p := StartNginx(t, func(listen string) (string, error) {
		return fmt.Sprintf(`events {}
http {
    server {
        listen %s;
        location / { proxy_pass http://%s; }
    }
}
`, listen, up.Addr()), nil
	})
	status, body := get(t, p.URL()+"/a/b?c=d", http.Header{"X-Test": {"1"}})
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s; log: %s", status, body, p.Log())
	}
	e, err := DecodeEcho(body)
	if err != nil {
		t.Fatal(err)
	}
	if e.URI != "/a/b?c=d" || e.Header.Get("X-Test") != "1" {
		t.Errorf("upstream saw %+v", e)
	}
	if n := len(up.Requests()); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}

	p.Stop()
	c := &http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get(p.URL()); err == nil {
		resp.Body.Close()
		t.Errorf("nginx still answers after Stop: %s", resp.Status)
	}
}

func TestCaddyProxiesToUpstream(t *testing.T) {
	up := StartUpstream(t)
	p := StartCaddy(t, func(listen string) (string, error) {
		return fmt.Sprintf("http://%s {\n\treverse_proxy %s\n}\n", listen, up.Addr()), nil
	})
	status, body := get(t, p.URL()+"/x?y=1", nil)
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s; log: %s", status, body, p.Log())
	}
	e, err := DecodeEcho(body)
	if err != nil {
		t.Fatal(err)
	}
	if e.URI != "/x?y=1" {
		t.Errorf("upstream saw %+v", e)
	}
	// Caddy's configuration, autosave and data stay in the proxy's directory.
	for _, f := range []string{"Caddyfile", "proxy.log", "config/caddy/autosave.json"} {
		if _, err := os.Stat(filepath.Join(p.Dir(), f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Several proxies at once: each gets its own port and files.
func TestParallelProxies(t *testing.T) {
	up := StartUpstream(t)
	var wg sync.WaitGroup
	proxies := make([]*Proxy, 4)
	for i := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			render := func(listen string) (string, error) {
				return fmt.Sprintf("http://%s {\n\treverse_proxy %s\n}\n", listen, up.Addr()), nil
			}
			if i%2 == 0 {
				proxies[i] = StartCaddy(t, render)
				return
			}
			proxies[i] = StartNginx(t, func(listen string) (string, error) {
				return fmt.Sprintf("events {}\nhttp {\n    server { listen %s; location / { proxy_pass http://%s; } }\n}\n", listen, up.Addr()), nil
			})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, p := range proxies {
		if p == nil {
			t.Fatal("a proxy did not start")
		}
		if seen[p.Addr] {
			t.Errorf("two proxies on %s", p.Addr)
		}
		seen[p.Addr] = true
		if status, body := get(t, p.URL()+"/", nil); status != http.StatusOK {
			t.Errorf("%s: status %d body %s", p.Addr, status, body)
		}
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Helper() {}

// runFatal runs fn with a fatalTB and returns the Fatalf message ("" if none).
func runFatal(t *testing.T, fn func(tb testing.TB)) string {
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.msg
}

func TestBadConfigurationsFailClearly(t *testing.T) {
	cases := []struct {
		name  string
		start func(tb testing.TB)
		want  string
	}{
		{"nginx without http block", func(tb testing.TB) {
			StartNginx(tb, func(string) (string, error) { return "events {}\n", nil })
		}, "exactly one line `http {`"},
		{"nginx syntax error", func(tb testing.TB) {
			StartNginx(tb, func(l string) (string, error) {
				return "events {}\nhttp {\n    server { listen " + l + "; bogus_directive on; }\n}\n", nil
			})
		}, "bogus_directive"},
		{"caddy with global block", func(tb testing.TB) {
			StartCaddy(tb, func(string) (string, error) { return "{\n\tdebug\n}\n", nil })
		}, "global options block"},
		{"caddy syntax error", func(tb testing.TB) {
			StartCaddy(tb, func(l string) (string, error) { return "http://" + l + " {\n\tno_such_directive\n}\n", nil })
		}, "no_such_directive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := runFatal(t, c.start)
			if !strings.Contains(msg, c.want) {
				t.Errorf("Fatalf message %q does not contain %q", msg, c.want)
			}
		})
	}
}

func TestFindBinaryNamesWhatIsMissing(t *testing.T) {
	_, err := findBinary("gatehouse-no-such-proxy", "/nonexistent/proxy")
	if err == nil || !strings.Contains(err.Error(), "gatehouse-no-such-proxy not found") {
		t.Errorf("findBinary error = %v", err)
	}
}
