package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
)

// TestNoCommandListsEveryCommand: "gatehouse" alone names every command,
// the directory commands included.
func TestNoCommandListsEveryCommand(t *testing.T) {
	r := gatehouse(t, baseEnv())
	assertOneLineError(t, r, "no command given")
	for _, c := range commands() {
		if !strings.Contains(r.stderr, c.name) {
			t.Errorf("the message does not name %q: %q", c.name, r.stderr)
		}
	}
}

// TestUnknownVariableWarned: a GATEHOUSE_* variable no setting reads is
// named, with the setting it most likely misspells, and its value is not
// printed (it may be the secret that was meant).
func TestUnknownVariableWarned(t *testing.T) {
	const typo = "GATEHOUSE_JWT_SECRT=typo-value-never-printed"
	t.Run("token", func(t *testing.T) {
		r := gatehouse(t, baseEnv("GATEHOUSE_JWT_SECRET=unknown-variable-test-secret-0123456789", typo),
			"token", "--user-id", "u", "--client-id", "c")
		if r.code != exitOK {
			t.Fatalf("token: code %d %s", r.code, r.stderr)
		}
		var resp authz.TokenResponse
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Errorf("stdout is no longer the token alone: %v\n%s", err, r.stdout)
		}
		want := "gatehouse: warning: GATEHOUSE_JWT_SECRT is not a setting and is ignored (did you mean GATEHOUSE_JWT_SECRET?)\n"
		if r.stderr != want {
			t.Errorf("stderr = %q, want %q", r.stderr, want)
		}
	})
	t.Run("serve", func(t *testing.T) {
		s := startServe(t, baseEnv(typo, "GATEHOUSE_LOG_FORMAT=text"),
			"--dev", "--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
		s.waitFor(t, s.stderr, regexp.MustCompile(`level=WARN msg="unknown GATEHOUSE_ variable ignored" variable=GATEHOUSE_JWT_SECRT did_you_mean=GATEHOUSE_JWT_SECRET`))
		if code := s.terminate(t); code != 0 {
			t.Errorf("serve exited %d", code)
		}
		if strings.Contains(s.stderr.String()+s.stdout.String(), "typo-value-never-printed") {
			t.Error("the unknown variable's value is printed")
		}
	})
}

// TestShortSecretWarned: an HMAC key shorter than its hash's output (RFC
// 7518 §3.2) starts, with a warning that names the algorithm and the
// length wanted, never the key; a long enough key gets no warning.
func TestShortSecretWarned(t *testing.T) {
	const warning = "JWT secret is shorter than the hash output"
	for _, c := range []struct {
		secret, alg string
		warn        bool
	}{
		{"short-key-never-printed", "HS256", true},
		{"long-enough-key-never-printed-0123456789", "HS256", false},
		{"long-enough-key-never-printed-0123456789", "HS512", true},
	} {
		s := startServe(t, baseEnv("GATEHOUSE_JWT_SECRET="+c.secret, "GATEHOUSE_JWT_ALGORITHM="+c.alg, "GATEHOUSE_LOG_FORMAT=text"),
			"--dev", "--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
		s.waitFor(t, s.stderr, regexp.MustCompile(`msg=listening`))
		if code := s.terminate(t); code != 0 {
			t.Errorf("%s %s: serve exited %d", c.alg, c.secret, code)
		}
		logs := s.stderr.String()
		if got := strings.Contains(logs, warning); got != c.warn {
			t.Errorf("%s, %d bytes: warned %v, want %v\n%s", c.alg, len(c.secret), got, c.warn, logs)
		}
		if c.warn && !strings.Contains(logs, "algorithm="+c.alg) {
			t.Errorf("the warning does not name the algorithm:\n%s", logs)
		}
		if strings.Contains(logs+s.stdout.String(), c.secret) {
			t.Error("the secret is printed")
		}
	}
}

// TestServeRedisPasswordFile: GATEHOUSE_REDIS_USERNAME and
// GATEHOUSE_REDIS_PASSWORD_FILE reach Redis from the command line (an ACL
// user), and the password is never printed.
func TestServeRedisPasswordFile(t *testing.T) {
	const password = "redis-acl-password-never-printed"
	const user = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	rs := redistest.Start(t)
	ctx := context.Background()
	admin := rs.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "gatehouse", "on", ">"+password, "~gatehouse:*", "&gatehouse:*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.HSet(ctx, "gatehouse:user:"+user, "active", "1").Err(); err != nil {
		t.Fatal(err)
	}
	env := baseEnv(
		"GATEHOUSE_JWT_SECRET=redis-password-file-test-secret-0123456789",
		"GATEHOUSE_REDIS_URL="+rs.URL(),
		"GATEHOUSE_REDIS_USERNAME=gatehouse",
		"GATEHOUSE_REDIS_PASSWORD_FILE="+testkit.WriteFile(t, "redis-password", password+"\n"),
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_LOG_FORMAT=text",
	)
	s := startServe(t, env)
	addr := s.waitFor(t, s.stderr, regexp.MustCompile(`msg=listening grpc=(127\.0\.0\.1:\d+)`))[1]
	tok := gatehouse(t, env, "token", "--user-id", user, "--client-id", "meet-app")
	var resp authz.TokenResponse
	if err := json.Unmarshal([]byte(tok.stdout), &resp); err != nil {
		t.Fatalf("token: %v\n%s%s", err, tok.stdout, tok.stderr)
	}
	if r := gatehouse(t, env, "check", "--addr", addr, "--token", resp.AccessToken); r.code != exitOK {
		t.Errorf("check through the ACL user: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code := s.terminate(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
	if strings.Contains(s.stderr.String(), password) {
		t.Error("the Redis password is printed")
	}
}
