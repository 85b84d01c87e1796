// Package proxytest runs real reverse proxies (nginx, Caddy) and a header
// echoing upstream for integration tests of gatehouse's forward-auth handler.
//
// Each Start launches a private proxy process on a free 127.0.0.1 port with
// every file it writes (configuration, pid, logs, temp files, Caddy's data
// and config directories) inside t.TempDir(), waits until it is serving, and
// stops it when the test ends. The proxies run in the foreground as one
// process (nginx with master_process off), launched by testkit/proc (with
// Pdeathsig on Linux), so no stray process outlives a crashed test binary.
//
// Tests that need a proxy fail, never skip, when its binary is missing: a
// skipped test would hide a broken setup. Debian's nginx (with the
// auth_request module) and caddy packages are what CI installs.
package proxytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	portAttempts = 5
)

// Proxy is one running proxy process owned by a test.
type Proxy struct {
	// Addr is the 127.0.0.1:port the proxy listens on.
	Addr string

	t       testing.TB
	name    string
	dir     string
	logPath string
	proc    *proc.Process
	stop    sync.Once
}

// URL returns "http://" + Addr.
func (p *Proxy) URL() string { return "http://" + p.Addr }

// Log returns the end of the proxy's log (stderr and, for nginx, the error
// log), for failure messages.
func (p *Proxy) Log() string { return p.proc.Log() }

// Dir returns the proxy's private directory.
func (p *Proxy) Dir() string { return p.dir }

// Render turns the listen address ("127.0.0.1:port") into a configuration.
type Render func(listen string) (string, error)

// launcher is what differs between nginx and Caddy.
type launcher struct {
	name string
	// prepare writes the configuration for listen into dir and returns the
	// command to run.
	prepare func(dir, listen string) (*exec.Cmd, error)
	// ready reports whether the started process is serving (nil) or why not.
	ready func(p *Proxy) error
}

// start runs l until it is ready on a free port, trying a few ports in case
// another process takes one between the probe and the proxy's bind.
func start(t testing.TB, l launcher) *Proxy {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for attempt := range portAttempts {
		port, err := testkit.FreePort()
		if err != nil {
			t.Fatalf("proxytest: find a free port: %v", err)
		}
		listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		runDir := filepath.Join(dir, strconv.Itoa(attempt))
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			t.Fatalf("proxytest: %v", err)
		}
		p, err := launch(t, l, runDir, listen)
		if err == nil {
			return p
		}
		lastErr = err
		var cfgErr *configError
		if errors.As(err, &cfgErr) {
			break // another port will not help
		}
	}
	t.Fatalf("proxytest: start %s: %v", l.name, lastErr)
	return nil
}

// configError marks a failure that retrying on another port cannot fix.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

func launch(t testing.TB, l launcher, dir, listen string) (*Proxy, error) {
	cmd, err := l.prepare(dir, listen)
	if err != nil {
		return nil, &configError{err}
	}
	logPath := filepath.Join(dir, "proxy.log")
	cmd.Dir = dir
	pr, err := proc.Start(proc.Spec{Name: l.name + " on " + listen, Cmd: cmd, Log: logPath})
	if err != nil {
		return nil, &configError{err}
	}
	p := &Proxy{Addr: listen, t: t, name: l.name, dir: dir, logPath: logPath, proc: pr}
	t.Cleanup(p.Stop)

	err = pr.Poll(readyTimeout, 20*time.Millisecond, func() error { return l.ready(p) })
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, proc.ErrExited) && strings.Contains(strings.ToLower(p.Log()), "address already in use"):
		return nil, err // another port may do
	default:
		p.Stop()
		return nil, &configError{err}
	}
}

// Stop terminates the proxy (SIGTERM, then SIGKILL after a few seconds) and
// waits for it. It is registered as a cleanup; calling it earlier simulates
// a proxy going away.
func (p *Proxy) Stop() {
	p.stop.Do(func() {
		if err := p.proc.Stop(syscall.SIGTERM, stopTimeout); err != nil {
			p.t.Errorf("proxytest: %v", err)
		}
	})
}

// dialable reports whether something accepts connections on addr.
func dialable(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

// findBinary looks name up in PATH, then in the sbin directories that a
// non-root PATH often lacks (Debian installs nginx in /usr/sbin).
func findBinary(name string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range extra {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH nor in %s", name, strings.Join(extra, ", "))
}

// ---- nginx ----

// httpBlock finds the opening of nginx's http block.
var httpBlock = regexp.MustCompile(`(?m)^[ \t]*http[ \t]*\{[ \t]*$`)

// NginxBinary returns the nginx binary to run, failing the test with what to
// install when there is none or it lacks the auth_request module.
func NginxBinary(t testing.TB) string {
	t.Helper()
	bin, err := findBinary("nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
	if err != nil {
		t.Fatalf("proxytest: %v; these tests need a real nginx with the auth_request module: apt-get install nginx (CI: .ci/run installs it)", err)
	}
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("proxytest: %s -V: %v: %s", bin, err, out)
	}
	if !bytes.Contains(out, []byte("--with-http_auth_request_module")) {
		t.Fatalf("proxytest: %s is built without the auth_request module (nginx -V: %s); install Debian's nginx", bin, out)
	}
	return bin
}

// StartNginx runs nginx with the configuration render returns for the
// listen address. The configuration is a complete nginx.conf with one
// "http {" line; proxytest inserts after it the directives that keep temp
// files and the access log in the proxy's directory, and runs nginx in the
// foreground without a master process (-g 'daemon off; master_process off;
// pid ...;'), so the configuration must not set daemon, master_process or
// pid itself.
func StartNginx(t testing.TB, render Render) *Proxy {
	t.Helper()
	bin := NginxBinary(t)
	return start(t, launcher{
		name: "nginx",
		prepare: func(dir, listen string) (*exec.Cmd, error) {
			conf, err := render(listen)
			if err != nil {
				return nil, fmt.Errorf("render nginx.conf: %w", err)
			}
			loc := httpBlock.FindAllStringIndex(conf, -1)
			if len(loc) != 1 {
				return nil, fmt.Errorf("nginx.conf must have exactly one line `http {`, found %d", len(loc))
			}
			var paths strings.Builder
			for _, d := range []string{"client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"} {
				fmt.Fprintf(&paths, "\n    %s %s;", d, filepath.Join(dir, strings.TrimSuffix(d, "_path")))
			}
			fmt.Fprintf(&paths, "\n    access_log %s;\n", filepath.Join(dir, "access.log"))
			at := loc[0][1]
			conf = conf[:at] + paths.String() + conf[at:]
			confPath := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
				return nil, err
			}
			global := fmt.Sprintf("daemon off; master_process off; pid %s; error_log stderr notice;", filepath.Join(dir, "nginx.pid"))
			return exec.Command(bin, "-p", dir+string(filepath.Separator), "-c", confPath, "-e", "stderr", "-g", global), nil
		},
		ready: func(p *Proxy) error {
			// nginx writes its pid file after it has bound every listener;
			// before that, the port may belong to someone else.
			b, err := os.ReadFile(filepath.Join(p.dir, "nginx.pid"))
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(b)) != strconv.Itoa(p.proc.Pid()) {
				return fmt.Errorf("pid file says %q, not %d", strings.TrimSpace(string(b)), p.proc.Pid())
			}
			return dialable(p.Addr)
		},
	})
}

// ---- Caddy ----

// CaddyBinary returns the caddy binary to run, failing the test with what to
// install when there is none.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	bin, err := findBinary("caddy", "/usr/bin/caddy", "/usr/local/bin/caddy")
	if err != nil {
		t.Fatalf("proxytest: %v; these tests need a real Caddy 2 (forward_auth): apt-get install caddy (CI: .ci/run installs it)", err)
	}
	return bin
}

// caddyGlobal is prepended to every Caddyfile: no admin endpoint (its
// default localhost:2019 would collide between tests), no automatic HTTPS.
const caddyGlobal = "{\n\tadmin off\n\tauto_https off\n}\n\n"

// caddyReady is what `caddy run` logs once the configuration is serving.
const caddyReady = "serving initial configuration"

// StartCaddy runs `caddy run --adapter caddyfile` with the Caddyfile render
// returns for the listen address. The Caddyfile must not have a global
// options block: proxytest prepends one (admin off, auto_https off). HOME,
// XDG_DATA_HOME and XDG_CONFIG_HOME point into the proxy's directory.
func StartCaddy(t testing.TB, render Render) *Proxy {
	t.Helper()
	bin := CaddyBinary(t)
	return start(t, launcher{
		name: "caddy",
		prepare: func(dir, listen string) (*exec.Cmd, error) {
			conf, err := render(listen)
			if err != nil {
				return nil, fmt.Errorf("render Caddyfile: %w", err)
			}
			if strings.HasPrefix(strings.TrimSpace(conf), "{") {
				return nil, errors.New("the Caddyfile must not have a global options block; proxytest adds one")
			}
			confPath := filepath.Join(dir, "Caddyfile")
			if err := os.WriteFile(confPath, []byte(caddyGlobal+conf), 0o644); err != nil {
				return nil, err
			}
			cmd := exec.Command(bin, "run", "--config", confPath, "--adapter", "caddyfile")
			cmd.Env = append(os.Environ(),
				"HOME="+dir,
				"XDG_DATA_HOME="+filepath.Join(dir, "data"),
				"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
			)
			return cmd, nil
		},
		ready: func(p *Proxy) error {
			b, err := os.ReadFile(p.logPath)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(caddyReady)) {
				return errors.New("caddy has not logged " + strconv.Quote(caddyReady) + " yet")
			}
			return dialable(p.Addr)
		},
	})
}

// ---- upstream ----

// Echo is what the upstream received, as it answers it.
type Echo struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

// Upstream is a loopback HTTP server that answers every request with 200
// and its Echo as JSON, and remembers how many requests it saw.
type Upstream struct {
	srv *httptest.Server

	mu   sync.Mutex
	seen []Echo
}

// StartUpstream starts an Upstream, closed when the test ends.
func StartUpstream(t testing.TB) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

// Addr returns the upstream's 127.0.0.1:port.
func (u *Upstream) Addr() string { return u.srv.Listener.Addr().String() }

// Requests returns a copy of what the upstream received so far.
func (u *Upstream) Requests() []Echo {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Echo(nil), u.seen...)
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	e := Echo{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone()}
	u.mu.Lock()
	u.seen = append(u.seen, e)
	u.mu.Unlock()
	b, err := json.Marshal(e)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "echo")
	_, _ = w.Write(b)
}

// DecodeEcho parses an upstream answer.
func DecodeEcho(body []byte) (Echo, error) {
	var e Echo
	if err := json.Unmarshal(body, &e); err != nil {
		return Echo{}, fmt.Errorf("proxytest: not an upstream echo: %w (body %q)", err, body)
	}
	return e, nil
}
