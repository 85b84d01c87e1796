package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/pgtest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
)

func TestDirectorySQL(t *testing.T) {
	r := gatehouse(t, baseEnv(), "directory", "sql")
	if r.code != exitOK {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"AFTER UPDATE OF is_active ON meet_user",
		"AFTER UPDATE OF is_active ON meet_application",
		"AFTER DELETE ON meet_user",
		"pg_notify('gatehouse_invalidate', 'user:' || OLD.id::text)",
		"pg_notify('gatehouse_invalidate', 'app:' || OLD.client_id::text)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("directory sql lacks %q:\n%s", want, r.stdout)
		}
	}
	legacy := gatehouse(t, baseEnv(), "directory", "sql", "--legacy-app-column")
	if !strings.Contains(legacy.stdout, "AFTER UPDATE OF active ON meet_application") ||
		!strings.Contains(legacy.stdout, "AFTER UPDATE OF is_active ON meet_user") {
		t.Errorf("--legacy-app-column:\n%s", legacy.stdout)
	}
	assertOneLineError(t, gatehouse(t, baseEnv(), "directory", "trigger"), `unknown command "trigger"`)
	if r := gatehouse(t, baseEnv(), "directory"); r.code != exitUsage || !strings.Contains(r.stderr, "Usage: gatehouse directory sql") {
		t.Errorf("directory alone: code %d\n%s", r.code, r.stderr)
	}
}

// TestDirectoryCommandsRefuseWithOrigin: with a directory of record
// elsewhere, the commands that manage the Redis directory refuse, saying
// where the record is, without its password.
func TestDirectoryCommandsRefuseWithOrigin(t *testing.T) {
	const password = "origin-password-never-printed"
	env := baseEnv("GATEHOUSE_DIRECTORY_ORIGIN=postgres://gatehouse:"+password+"@db.invalid/meet", "GATEHOUSE_REDIS_URL=redis://127.0.0.1:1/0")
	for _, args := range [][]string{
		{"users", "put", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
		{"users", "disable", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
		{"apps", "delete", "meet-app"},
		{"users", "import", "-"},
		{"users", "get", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"},
	} {
		r := gatehouse(t, env, args...)
		assertOneLineError(t, r, "the directory of record is GATEHOUSE_DIRECTORY_ORIGIN (postgres://gatehouse:REDACTED@db.invalid/meet), not Redis")
		if strings.Contains(r.stderr, password) {
			t.Errorf("%v: the password is printed", args)
		}
	}
}

// TestServeWithPostgresOrigin: "gatehouse serve" against Meet's database
// (its password from a file) and a Redis, nothing else set up: an active
// user is allowed, and deactivating them in PostgreSQL (the trigger
// installed from "gatehouse directory sql") gets them refused within a
// second.
func TestServeWithPostgresOrigin(t *testing.T) {
	const (
		user     = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
		password = "origin-password-never-printed"
	)
	pg := pgtest.Start(t)
	pg.Exec(t, `
CREATE TABLE meet_user (id uuid PRIMARY KEY, email text NOT NULL DEFAULT '', is_active boolean NOT NULL DEFAULT true);
CREATE TABLE meet_application (id serial PRIMARY KEY, client_id varchar(100) NOT NULL UNIQUE, is_active boolean NOT NULL DEFAULT true);
CREATE ROLE gatehouse LOGIN PASSWORD '`+password+`';
GRANT SELECT (id, is_active) ON meet_user TO gatehouse;
GRANT SELECT (client_id, is_active) ON meet_application TO gatehouse;
INSERT INTO meet_user (id) VALUES ('`+user+`');`)
	sql := gatehouse(t, baseEnv(), "directory", "sql")
	pg.Exec(t, sql.stdout)
	rs := redistest.Start(t)

	env := baseEnv(
		"GATEHOUSE_JWT_SECRET=origin-serve-test-secret-0123456789abcdef",
		"GATEHOUSE_DIRECTORY_ORIGIN="+pg.URLFor("gatehouse", ""),
		"GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE="+testkit.WriteFile(t, "pg-password", password+"\n"),
		"GATEHOUSE_REDIS_URL="+rs.URL(),
		"GATEHOUSE_CACHE_TTL=1h",
		"GATEHOUSE_REDIS_CACHE_TTL=1h",
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_LOG_FORMAT=text",
	)
	s := startServe(t, env)
	addr := s.waitFor(t, s.stderr, regexp.MustCompile(`msg=listening grpc=(127\.0\.0\.1:\d+)`))[1]
	s.waitFor(t, s.stderr, regexp.MustCompile(`msg="directory notifications: listening"`))
	tok := gatehouse(t, env, "token", "--user-id", user, "--client-id", "meet-app")
	var resp authz.TokenResponse
	if err := json.Unmarshal([]byte(tok.stdout), &resp); err != nil {
		t.Fatalf("token: %v\n%s%s", err, tok.stdout, tok.stderr)
	}
	if r := gatehouse(t, env, "check", "--addr", addr, "--token", resp.AccessToken); r.code != exitOK {
		t.Fatalf("active user: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	start := time.Now()
	if _, err := conn.Exec(ctx, "UPDATE meet_user SET is_active = false WHERE id = $1", user); err != nil {
		t.Fatal(err)
	}
	for {
		r := gatehouse(t, env, "check", "--addr", addr, "--token", resp.AccessToken)
		if r.code == exitFail {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("still code %d 1 s after the deactivation was committed\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	t.Logf("deactivation refused %v after the UPDATE was sent (each check is a new process)", time.Since(start))
	if code := s.terminate(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
	if strings.Contains(s.stderr.String()+s.stdout.String(), password) {
		t.Error("the database password is printed")
	}
}
