// Package pgtest runs a real PostgreSQL server for tests.
//
// Start runs initdb into a fresh temporary directory and launches postgres on
// a free 127.0.0.1 port, with its Unix socket in that directory too, and
// stops it when the test ends. The cluster's superuser authenticates with a
// password (scram-sha-256), so the client code under test goes through the
// same authentication as in production.
//
// PostgreSQL refuses to run as root: when the test binary runs as root (CI,
// the development containers) the server runs as the "postgres" system user
// (which Debian's postgresql package creates), falling back to "nobody", and
// its directory (directly under the system's temporary directory) is handed
// to that user.
//
// Tests that need PostgreSQL fail, not skip, when the binaries are missing:
// a skipped test would hide a broken setup. scripts/ensure-deps.sh (run by
// `make test`) installs Debian's postgresql package, whose binaries live in
// /usr/lib/postgresql/<version>/bin, outside PATH; Start looks there too.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proc"
)

const (
	// Superuser is the name of the cluster's superuser.
	Superuser = "gatehouse_admin"
	// Database is the database Start creates for the test.
	Database = "meet"

	// initdb writes a whole cluster; on a loaded 2-core machine that can
	// take several seconds.
	initTimeout  = 60 * time.Second
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	portAttempts = 5
)

// Server is one postgres process (and its cluster) owned by a test.
type Server struct {
	t        testing.TB
	bin      string // directory holding initdb and postgres
	dir      string // cluster, socket and log directory
	password string
	cred     *syscall.Credential // nil: run as the current user

	mu   sync.Mutex
	port int
	cmd  *proc.Process // nil when not running
	runs int
}

// Start creates a cluster, launches postgres for t, creates the database
// Database and registers the cleanup. It fails the test when the binaries
// are missing or the server does not accept connections in time.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{t: t, bin: bin, password: randomPassword(t)}
	s.dir, s.cred = makeDir(t)
	t.Cleanup(s.cleanup)
	s.initdb()

	var lastErr error
	for range portAttempts {
		port, err := testkit.FreePort()
		if err != nil {
			t.Fatalf("pgtest: find a free port: %v", err)
		}
		s.mu.Lock()
		s.port = port
		s.mu.Unlock()
		if lastErr = s.launch(); lastErr == nil {
			break
		}
		// Most likely another process took the port between FreePort and
		// postgres binding it: try another.
	}
	if lastErr != nil {
		t.Fatalf("pgtest: start postgres: %v", lastErr)
	}
	s.Exec(t, "CREATE DATABASE "+Database)
	return s
}

// BinDir returns the directory holding initdb and postgres: the one on PATH,
// or else the newest /usr/lib/postgresql/<version>/bin (Debian's layout).
func BinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres not found on PATH nor in /usr/lib/postgresql/*/bin; " +
		"these tests need a real PostgreSQL: run scripts/ensure-deps.sh (or `make test`), which installs Debian's postgresql package")
}

func versionOf(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// makeDir returns the server's directory and, when running as root, the
// credentials of the user the server runs as.
func makeDir(t testing.TB) (string, *syscall.Credential) {
	t.Helper()
	// Not t.TempDir(): its parents are private to root, and its path,
	// named after the test, can be too long for a Unix socket (107 bytes).
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir, nil
	}
	var cred *syscall.Credential
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		break
	}
	if cred == nil {
		t.Fatalf("pgtest: running as root and neither a postgres nor a nobody user exists; postgres refuses to run as root")
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatalf("pgtest: hand %s to uid %d: %v", dir, cred.Uid, err)
	}
	return dir, cred
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// initdb creates the cluster with a password-protected superuser.
func (s *Server) initdb() {
	t := s.t
	t.Helper()
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.chown(pwfile)
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"),
		"-D", s.dataDir(),
		"-U", Superuser,
		"--pwfile", pwfile,
		"--auth", "scram-sha-256",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync",
	)
	cmd.Dir = s.dir
	s.setProcAttr(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	_ = os.Remove(pwfile)
}

func (s *Server) chown(path string) {
	if s.cred == nil {
		return
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		s.t.Fatalf("pgtest: chown %s: %v", path, err)
	}
}

// setProcAttr runs the child as the server's user and makes the kernel kill
// it if the test binary dies without running its cleanups (Go sets the
// parent-death signal after switching user, so the switch does not clear
// it). The postmaster's own children exit when it does.
func (s *Server) setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
}

// launch starts postgres on s.port and waits until it accepts connections.
func (s *Server) launch() error {
	s.mu.Lock()
	s.runs++
	port := s.port
	logPath := filepath.Join(s.dir, fmt.Sprintf("postgres-%d.log", s.runs))
	s.mu.Unlock()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", s.dataDir(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=40",
		"-c", "shared_buffers=16MB",
		"-c", "logging_collector=off",
	)
	cmd.Dir = s.dir
	s.setProcAttr(cmd)
	p, err := proc.Start(proc.Spec{Name: fmt.Sprintf("postgres on port %d", port), Cmd: cmd, Log: logPath})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd = p
	s.mu.Unlock()
	if err := p.Poll(readyTimeout, 20*time.Millisecond, s.checkOurs); err != nil {
		s.kill()
		return err
	}
	return nil
}

// checkOurs connects and checks that the server answering on the port runs
// our cluster, so that another test's server holding the port is not taken
// for ours.
func (s *Server) checkOurs() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.urlFor(Superuser, s.password, "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var dataDir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir); err != nil {
		return err
	}
	if dataDir != s.dataDir() {
		return fmt.Errorf("the server on port %d is not ours (data directory %s)", s.Port(), dataDir)
	}
	return nil
}

func randomPassword(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// With characters that need escaping in a URL, so that the code under
	// test must handle them.
	return "pw:" + hex.EncodeToString(b) + "/@%x"
}

// Port returns the server's TCP port.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Addr returns host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())) }

// Password returns the superuser's password.
func (s *Server) Password() string { return s.password }

// Dir returns the server's directory (cluster, socket, logs).
func (s *Server) Dir() string { return s.dir }

// URL returns a postgres:// URL for the test database as the superuser,
// password included.
func (s *Server) URL() string { return s.urlFor(Superuser, s.password, Database) }

// URLFor returns a postgres:// URL for the test database as role user; an
// empty password leaves it out of the URL.
func (s *Server) URLFor(user, password string) string { return s.urlFor(user, password, Database) }

func (s *Server) urlFor(role, password, db string) string {
	u := &url.URL{Scheme: "postgres", Host: s.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(role, password)
	} else {
		u.User = url.User(role)
	}
	return u.String()
}

// Exec runs sql (one or more statements) in the test database as the
// superuser and fails t on error.
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	db := Database
	if strings.HasPrefix(sql, "CREATE DATABASE") {
		db = "postgres"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.urlFor(Superuser, s.password, db))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: exec %q: %v", sql, err)
	}
}

// Stop shuts the server down (fast shutdown: sessions are ended) and waits
// for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Stop(syscall.SIGINT, stopTimeout); err != nil {
		s.t.Errorf("pgtest: %v", err)
	}
	s.mu.Lock()
	if s.cmd == cmd {
		s.cmd = nil
	}
	s.mu.Unlock()
}

// Restart stops the server and starts it again on the same port, keeping
// its data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("pgtest: restart postgres: %v", err)
	}
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Kill(stopTimeout); err != nil {
		s.t.Errorf("pgtest: %v", err)
	}
}

func (s *Server) cleanup() { s.Stop() }
