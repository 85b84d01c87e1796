package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// binary is the gatehouse binary built once by TestMain, with link-time
// version values so that "version" can be checked.
var binary string

const (
	testVersion = "v0.0.0-test"
	testCommit  = "0123abc"
	// waitBound bounds every wait on a subprocess.
	waitBound = 15 * time.Second
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(os.Stderr, "the go command is not on PATH: %v\n", err)
		os.Exit(1)
	}
	build := exec.Command(goBin, "build",
		"-ldflags", "-X main.version="+testVersion+" -X main.commit="+testCommit,
		"-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gatehouse:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseEnv is the whole environment of a subprocess: no GATEHOUSE_* variable
// of the machine running the tests leaks in.
func baseEnv(extra ...string) []string {
	// The forward-auth listener defaults to :8080: keep tests on loopback
	// ports of their own. No drain period: SIGTERM stops at once.
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "GATEHOUSE_HTTP_ADDR=127.0.0.1:0", "GATEHOUSE_DRAIN_PERIOD=0s"}, extra...)
}

// result is a finished subprocess.
type result struct {
	code           int
	stdout, stderr string
}

// gatehouse runs the binary to completion, within waitBound.
func gatehouse(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("gatehouse %s did not finish within %s", strings.Join(args, " "), waitBound)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run gatehouse %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// lockedBuffer collects a subprocess's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveProc is a "gatehouse serve" subprocess.
type serveProc struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	exited         chan struct{}
	exitCode       int
}

// startServe starts "gatehouse serve args..." and kills it at cleanup.
func startServe(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	s := &serveProc{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, append([]string{"serve"}, args...)...)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		s.exitCode = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("serve stdout:\n%s\nserve stderr:\n%s", s.stdout, s.stderr)
		}
	})
	return s
}

// waitFor polls the subprocess's output until re matches, within waitBound.
func (s *serveProc) waitFor(t *testing.T, out *lockedBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case <-s.exited:
			t.Fatalf("serve exited (code %d) before printing %s", s.exitCode, re)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print %s within %s", re, waitBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// terminate sends SIGTERM and returns the exit code, within waitBound.
func (s *serveProc) terminate(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		return s.exitCode
	case <-time.After(waitBound):
		t.Fatalf("serve did not exit within %s of SIGTERM", waitBound)
		return -1
	}
}

var checkLine = regexp.MustCompile(`gatehouse check --addr (\S+) --token (\S+)\n(?s:.*)gatehouse check --addr \S+ --token (\S+)\n`)

func TestDevServeAndCheck(t *testing.T) {
	s := startServe(t, baseEnv(), "--dev", "--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	m := s.waitFor(t, s.stdout, checkLine)
	addr, active, inactive := m[1], m[2], m[3]
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("banner address %q is not the bound loopback address", addr)
	}

	r := gatehouse(t, baseEnv(), "check", "--addr", addr, "--token", active, "--path", "/external-api/v1.0/rooms/")
	if r.code != exitOK || !strings.Contains(r.stdout, "decision: allow") ||
		!strings.Contains(r.stdout, "x-auth-user-id: "+devActiveUser) {
		t.Errorf("check with the active token: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, active) {
		t.Error("check printed the token")
	}

	r = gatehouse(t, baseEnv(), "check", "--addr", addr, "--token", inactive)
	if r.code != exitFail || !strings.Contains(r.stdout, "detail: User account is disabled.") ||
		!strings.Contains(r.stdout, "http status: 401") {
		t.Errorf("check with the inactive token: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = gatehouse(t, baseEnv(), "check", "--addr", addr, "--token", "not-a-token")
	if r.code != exitFail || !strings.Contains(r.stdout, "detail: Invalid token.") {
		t.Errorf("check with a bad token: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = gatehouse(t, baseEnv(), "check", "--addr", addr, "--header", "Authorization=Basic dXNlcjpwYXNz")
	if r.code != exitFail || !strings.Contains(r.stdout, "Authentication credentials were not provided.") {
		t.Errorf("check with a Basic header: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if code := s.terminate(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0", code)
	}
	logs := s.stderr.String()
	for _, want := range []string{`"msg":"listening"`, `"msg":"shutting down"`, `"msg":"stopped"`, `"jwt_secret":"REDACTED"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	// Every log line is JSON.
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
	}
}

// TestServeTokenCheck runs the operator's path: configuration from the
// environment, a token from "gatehouse token" with the same variables, and
// "gatehouse check" against the server.
func TestServeTokenCheck(t *testing.T) {
	const user = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	env := baseEnv(
		"GATEHOUSE_JWT_SECRET_FILE="+testkit.WriteFile(t, "secret", "operator-secret-0123456789abcdef-xyz\n"),
		"GATEHOUSE_USERS_FILE="+testkit.WriteFile(t, "users.yaml", "- {id: "+user+", active: true}\n"),
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_LOG_FORMAT=text",
	)
	s := startServe(t, env)
	m := s.waitFor(t, s.stderr, regexp.MustCompile(`msg=listening grpc=(127\.0\.0\.1:\d+)`))
	addr := m[1]

	tok := gatehouse(t, env, "token", "--user-id", user, "--client-id", "meet-app", "--scope", "rooms:list rooms:create")
	if tok.code != exitOK {
		t.Fatalf("token: code %d %s", tok.code, tok.stderr)
	}
	var resp authz.TokenResponse
	if err := json.Unmarshal([]byte(tok.stdout), &resp); err != nil {
		t.Fatalf("token output is not JSON: %v\n%s", err, tok.stdout)
	}
	r := gatehouse(t, env, "check", "--addr", addr, "--token", resp.AccessToken)
	if r.code != exitOK || !strings.Contains(r.stdout, "x-auth-scope: rooms:list rooms:create") {
		t.Errorf("check: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code := s.terminate(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0", code)
	}
	if strings.Contains(s.stderr.String(), "operator-secret") {
		t.Error("the secret appears in the logs")
	}
	if !strings.Contains(s.stderr.String(), "level=INFO msg=stopped") {
		t.Errorf("--log-format text did not give text logs:\n%s", s.stderr)
	}
}

func TestToken(t *testing.T) {
	const secret = "token-test-secret-0123456789abcdef"
	env := baseEnv("GATEHOUSE_JWT_SECRET=" + secret)
	r := gatehouse(t, env, "token", "--user-id", "u-1", "--client-id", "c-1", "--scope", "a b", "--ttl", "30m", "--audience", "api")
	if r.code != exitOK {
		t.Fatalf("token: code %d %s", r.code, r.stderr)
	}
	var resp authz.TokenResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.TokenType != "Bearer" || resp.ExpiresIn != 1800 || resp.Scope != "a b" || resp.AccessToken == "" {
		t.Errorf("token response = %+v", resp)
	}
	// The token is accepted by a decision core configured the same way, and
	// by no other.
	decide := func(audience string) authz.Decision {
		a, err := authz.New(authz.Options{
			JWT:          authz.JWTConfig{Secret: []byte(secret), Algorithm: "HS256", Issuer: "lasuite-meet", Audience: audience},
			Directory:    userstore.NewMemory([]userstore.Record{{ID: "u-1", Active: true}}, nil),
			UserIDFormat: authz.IDFormatOpaque,
		})
		if err != nil {
			t.Fatal(err)
		}
		return a.Decide(context.Background(), &authz.Request{Method: "GET", Path: "/", Authorization: "Bearer " + resp.AccessToken})
	}
	if d := decide("api"); !d.Allowed() || d.Identity.Scope != "a b" {
		t.Errorf("token refused by a matching verifier: %+v", d)
	}
	if d := decide(""); d.Allowed() {
		t.Error("a token with an audience was accepted by a verifier without one")
	}

	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no secret", baseEnv(), []string{"--user-id", "u", "--client-id", "c"}, "no JWT secret"},
		{"no user", env, []string{"--client-id", "c"}, "--user-id is required"},
		{"no client", env, []string{"--user-id", "u"}, "--client-id is required"},
		{"bad ttl", env, []string{"--user-id", "u", "--client-id", "c", "--ttl", "-1h"}, "--ttl must be positive"},
		{"bad algorithm", env, []string{"--user-id", "u", "--client-id", "c", "--algorithm", "none"}, "unsupported algorithm"},
		{"missing secret file", baseEnv("GATEHOUSE_JWT_SECRET_FILE=/nonexistent/key"), []string{"--user-id", "u", "--client-id", "c"}, "JWT secret file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := gatehouse(t, c.env, append([]string{"token"}, c.args...)...)
			assertOneLineError(t, r, c.want)
			if strings.Contains(r.stderr, secret) {
				t.Error("error shows the secret")
			}
		})
	}
}

// assertOneLineError checks a usage/config failure: exit 2, nothing on
// stdout, one line "gatehouse: ..." on stderr mentioning want.
func assertOneLineError(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != exitUsage {
		t.Errorf("exit code %d, want %d (stderr %q)", r.code, exitUsage, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty: %q", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "gatehouse: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not one \"gatehouse: ...\" line: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not mention %q", r.stderr, want)
	}
}

func TestServeRefusals(t *testing.T) {
	secret := "GATEHOUSE_JWT_SECRET=refusal-test-secret-0123456789abcdef"
	users := "GATEHOUSE_USERS_FILE=" + testkit.WriteFile(t, "users.json", `[]`)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"missing secret", baseEnv(users), nil, "no JWT secret"},
		{"no directory", baseEnv(secret), nil, "no user directory"},
		{"unknown algorithm", baseEnv(secret, users, "GATEHOUSE_JWT_ALGORITHM=RS256"), nil, `unsupported algorithm "RS256"`},
		{"unreadable secret file", baseEnv(users, "GATEHOUSE_JWT_SECRET_FILE=/nonexistent/key"), nil, "JWT secret file: open /nonexistent/key"},
		{"unreadable users file", baseEnv(secret, "GATEHOUSE_USERS_FILE=/nonexistent/users.json"), nil, "users file: open /nonexistent/users.json"},
		{"bad duration", baseEnv(secret, users, "GATEHOUSE_CACHE_TTL=soon"), nil, "GATEHOUSE_CACHE_TTL"},
		{"bad flag", baseEnv(secret, users), []string{"--no-such-flag"}, "no-such-flag"},
		{"stray argument", baseEnv(secret, users), []string{"now"}, `unexpected argument "now"`},
		{"busy port", baseEnv(secret, users, "GATEHOUSE_OPS_ADDR=127.0.0.1:0"), []string{"--grpc-addr", busy.Addr().String()}, "gRPC listener"},
		{"redis scheme", baseEnv(secret, "GATEHOUSE_REDIS_URL=http://u:pw-secret@127.0.0.1:1"), nil, "unsupported scheme"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := gatehouse(t, c.env, append([]string{"serve"}, c.args...)...)
			assertOneLineError(t, r, c.want)
			if strings.Contains(r.stderr, "refusal-test-secret") || strings.Contains(r.stderr, "pw-secret") {
				t.Errorf("error shows a secret: %q", r.stderr)
			}
		})
	}
}

func TestCommandLine(t *testing.T) {
	t.Run("no command", func(t *testing.T) {
		assertOneLineError(t, gatehouse(t, baseEnv()), "no command given")
	})
	t.Run("unknown command", func(t *testing.T) {
		assertOneLineError(t, gatehouse(t, baseEnv(), "frobnicate"), `unknown command "frobnicate"`)
	})
	t.Run("help", func(t *testing.T) {
		r := gatehouse(t, baseEnv(), "help")
		if r.code != exitOK {
			t.Fatalf("help: code %d", r.code)
		}
		for _, want := range []string{"serve", "token", "check", "version"} {
			if !strings.Contains(r.stdout, "gatehouse "+want) {
				t.Errorf("help does not list %s:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("serve help", func(t *testing.T) {
		for _, args := range [][]string{{"serve", "-h"}, {"help", "serve"}} {
			r := gatehouse(t, baseEnv(), args...)
			if r.code != exitOK || !strings.Contains(r.stdout, "GATEHOUSE_REDIS_URL") || !strings.Contains(r.stdout, "-dev") {
				t.Errorf("%v: code %d\n%s", args, r.code, r.stdout)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		r := gatehouse(t, baseEnv(), "version")
		if r.code != exitOK || !strings.Contains(r.stdout, "gatehouse "+testVersion) ||
			!strings.Contains(r.stdout, "commit: "+testCommit) || !strings.Contains(r.stdout, runtime.Version()) {
			t.Errorf("version: code %d\n%s", r.code, r.stdout)
		}
	})
	t.Run("check cannot connect", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		r := gatehouse(t, baseEnv(), "check", "--addr", addr, "--token", "secret-token-value")
		assertOneLineError(t, r, "check "+addr)
		if strings.Contains(r.stderr, "secret-token-value") {
			t.Error("check error shows the token")
		}
	})
	t.Run("check bad header", func(t *testing.T) {
		assertOneLineError(t, gatehouse(t, baseEnv(), "check", "--header", "novalue"), "not name=value")
	})
}

// TestCheckRequestShape checks the request "check" sends, in process.
func TestCheckRequestShape(t *testing.T) {
	req, err := checkRequest(checkArgs{
		method: "POST", path: "/a?b=c", host: "h.example", token: "T",
		headers: headerFlags{"X-One=1", "x-one=2", "Authorization=Basic x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h.GetMethod() != "POST" || h.GetPath() != "/a?b=c" || h.GetHost() != "h.example" || h.GetId() == "" {
		t.Errorf("request = %v", h)
	}
	want := map[string]string{"x-one": "1,2", "authorization": "Basic x", ":method": "POST", ":authority": "h.example"}
	for k, v := range want {
		if got := h.GetHeaders()[k]; got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}
