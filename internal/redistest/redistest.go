// Package redistest runs a real redis-server for tests.
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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/freeport"
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
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
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
		port, err := freeport.Loopback()
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
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
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
	cmd := exec.Command(s.bin, append(args, s.extra...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited during startup on port %d: %s", s.port, tail(logPath))
		default:
		}
		if err := ping(s.Addr(), cmd.Process.Pid, s.dialTLS); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("redis-server on port %d not ready after %v: %v; log: %s", s.port, readyTimeout, err, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
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

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
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
	cmd, exited, paused := s.cmd, s.exited, s.paused
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot handle SIGTERM
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		s.kill()
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
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		s.t.Errorf("redistest: redis-server pid %d did not exit after SIGKILL", cmd.Process.Pid)
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
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: signal %v: %v", sig, err)
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
