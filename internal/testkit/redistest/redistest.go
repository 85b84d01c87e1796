// Package redistest runs real redis-server processes for tests: a
// standalone server (Start), one speaking only TLS (StartTLS), replicas and
// sentinels (StartReplica, StartSentinel) and clusters (StartCluster,
// StartClusterWith). The processes are launched by testkit/proc.
//
// Each Start launches a private redis-server on a free 127.0.0.1 port with
// persistence disabled and its working directory in t.TempDir(), and kills it
// when the test ends. Tests that need Redis must fail, not skip, when the
// binary is missing: a skipped test would hide a broken setup. `make test`
// installs redis-server.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

const (
	readyTimeout = 5 * time.Second
	stopTimeout  = 5 * time.Second
	portAttempts = 5
)

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	// extra is appended to redis-server's arguments; portFlag names the
	// listening port option ("--port", or "--tls-port" for TLS); dialTLS,
	// when set, is used by the readiness check.
	extra    []string
	portFlag string
	dialTLS  *tls.Config
	// sentinelConf, when set, runs the server as a sentinel with this
	// configuration file.
	sentinelConf string

	mu     sync.Mutex
	cmd    *proc.Process // nil when not running
	paused bool
	client *redis.Client
	runs   int
}

// Start launches redis-server for t and registers its cleanup. It fails the
// test if the binary is missing or the server does not answer PING within a
// few seconds.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, nil, nil)
}

// start launches a server with extra arguments; extra may hold a "{port}"
// placeholder for arguments that need the chosen port.
func start(t testing.TB, extra func(s *Server) []string, dialTLS *tls.Config) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server not found in PATH (%v); these tests need a real Redis: run `make test`, which installs it", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), portFlag: "--port", dialTLS: dialTLS}
	t.Cleanup(s.cleanup)
	var lastErr error
	for range portAttempts {
		port, err := testkit.FreePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		s.port = port
		if extra != nil {
			s.extra = extra(s)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
		// Most likely another process took the port between freePort and
		// redis binding it: try another.
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// launch starts the process on s.port and waits until it answers PING.
func (s *Server) launch() error {
	s.mu.Lock()
	s.runs++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.runs))
	s.mu.Unlock()
	args := []string{
		s.portFlag, strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	}
	if s.portFlag != "--port" {
		args = append(args, "--port", "0")
	}
	if s.sentinelConf != "" {
		args = []string{s.sentinelConf, "--sentinel"}
	}
	p, err := proc.Start(proc.Spec{
		Name: fmt.Sprintf("redis-server on port %d", s.port),
		Cmd:  exec.Command(s.bin, append(args, s.extra...)...),
		Log:  logPath,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd, s.paused = p, false
	s.mu.Unlock()
	err = p.Poll(readyTimeout, 10*time.Millisecond, func() error { return ping(s.Addr(), p.Pid(), s.dialTLS) })
	if err != nil {
		s.kill()
	}
	return err
}

// ping speaks just enough RESP to check readiness without a client library's
// retries getting in the way. It asks INFO server and checks the process id,
// so a redis-server of another test that happens to hold the port is not
// mistaken for ours.
func ping(addr string, pid int, tlsConfig *tls.Config) error {
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	if tlsConfig != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	head = strings.TrimSpace(head)
	n, err := strconv.Atoi(strings.TrimPrefix(head, "$"))
	if !strings.HasPrefix(head, "$") || err != nil {
		return fmt.Errorf("INFO answered %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	if !strings.Contains(string(body), want) {
		return fmt.Errorf("the server on %s is not ours (pid %d)", addr, pid)
	}
	return nil
}

// Dir returns the server's working directory (its log files are there).
func (s *Server) Dir() string { return s.dir }

// Port returns the listening port.
func (s *Server) Port() int { return s.port }

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL for database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a go-redis client for the server, created on first use and
// closed at cleanup. It honours context deadlines (ContextTimeoutEnabled),
// as gatehouse's own clients do, and keeps dial/read timeouts short so an
// outage test fails fast.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{
			Addr:                  s.Addr(),
			ContextTimeoutEnabled: true,
			DialTimeout:           time.Second,
			ReadTimeout:           time.Second,
			WriteTimeout:          time.Second,
			TLSConfig:             s.dialTLS,
		})
	}
	return s.client
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit,
// killing it if it does not within a few seconds. The port stays reserved
// for Restart only by convention: nothing else in the test should take it.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// Stop sends SIGCONT first: a paused server cannot act on SIGTERM.
	if err := cmd.Stop(syscall.SIGTERM, stopTimeout); err != nil {
		s.t.Errorf("redistest: %v", err)
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// Kill ends the server abruptly (SIGKILL) and waits for it to exit.
func (s *Server) Kill() {
	s.kill()
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Kill(stopTimeout); err != nil {
		s.t.Errorf("redistest: %v", err)
	}
}

// Restart stops the server if it runs and starts a new one on the same
// port (with an empty dataset: persistence is off).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The old socket may linger briefly; redis sets SO_REUSEADDR, but
	// retry a few times anyway rather than flake.
	for range portAttempts {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing is
// answered, like a hung or overloaded Redis. Resume undoes it.
func (s *Server) Pause() { s.signalPause(syscall.SIGSTOP, true) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signalPause(syscall.SIGCONT, false) }

func (s *Server) signalPause(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v on a server that is not running", sig)
	}
	if err := s.cmd.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	s.paused = paused
}

func (s *Server) cleanup() {
	s.mu.Lock()
	client := s.client
	s.client = nil
	s.mu.Unlock()
	s.Kill()
	if client != nil {
		if err := client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			s.t.Logf("redistest: close client: %v", err)
		}
	}
}

// logTail returns the end of the running process's log, for failure
// messages.
func (s *Server) logTail() string {
	s.mu.Lock()
	p := s.cmd
	s.mu.Unlock()
	if p == nil {
		return "(not running)"
	}
	return p.Log()
}
