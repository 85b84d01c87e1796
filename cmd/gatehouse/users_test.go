package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
)

const cliUser = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the command in-process against rs, with vars as the whole
// environment, bounded by waitBound.
func cli(t *testing.T, rs *redistest.Server, vars map[string]string, args ...string) cliResult {
	t.Helper()
	return cliWithin(t, waitBound, rs, vars, args...)
}

// bulkBound bounds the 100 000-record import and export: generous, because
// a loaded CI machine running the race detector is slow, and a bound, not a
// speed requirement (the figures are logged, and measured by benchmarks).
const bulkBound = 3 * time.Minute

// cliWithin is cli with its own bound on the command.
func cliWithin(t *testing.T, bound time.Duration, rs *redistest.Server, vars map[string]string, args ...string) cliResult {
	t.Helper()
	env0 := map[string]string{}
	if rs != nil {
		env0["GATEHOUSE_REDIS_URL"] = rs.URL()
	}
	for k, v := range vars {
		env0[k] = v
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	code := run(ctx, args, env{stdout: &stdout, stderr: &stderr, lookup: func(k string) (string, bool) {
		v, ok := env0[k]
		return v, ok
	}})
	if ctx.Err() != nil {
		t.Fatalf("gatehouse %s did not finish within %s", strings.Join(args, " "), bound)
	}
	return cliResult{code, stdout.String(), stderr.String()}
}

func hgetall(t *testing.T, rs *redistest.Server, key string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := rs.Client().HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dbsize(t *testing.T, rs *redistest.Server) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := rs.Client().DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUsersCommands(t *testing.T) {
	rs := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	sub := rs.Client().Subscribe(ctx, "gatehouse:invalidate")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	expectMessage := func(want string) {
		t.Helper()
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil || msg.Payload != want {
			t.Fatalf("invalidation %v, %v; want %s", msg, err, want)
		}
	}

	// put normalises the UUID, writes, publishes.
	r := cli(t, rs, nil, "users", "put", strings.ToUpper(cliUser), "--email", "ann@example.com")
	if r.code != 0 {
		t.Fatalf("put: %+v", r)
	}
	if m := hgetall(t, rs, "gatehouse:user:"+cliUser); m["active"] != "1" || m["email"] != "ann@example.com" {
		t.Fatalf("stored %v", m)
	}
	expectMessage("user:" + cliUser)

	r = cli(t, rs, nil, "users", "get", cliUser)
	var got struct {
		ID     string
		Active bool
		Email  string
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.ID != cliUser || !got.Active || got.Email != "ann@example.com" {
		t.Fatalf("get: %+v (%+v)", r, got)
	}

	if r := cli(t, rs, nil, "users", "disable", cliUser); r.code != 0 {
		t.Fatalf("disable: %+v", r)
	}
	expectMessage("user:" + cliUser)
	if m := hgetall(t, rs, "gatehouse:user:"+cliUser); m["active"] != "0" || m["email"] != "ann@example.com" {
		t.Fatalf("after disable: %v", m)
	}
	if r := cli(t, rs, nil, "users", "enable", cliUser); r.code != 0 {
		t.Fatalf("enable: %+v", r)
	}
	expectMessage("user:" + cliUser)
	if m := hgetall(t, rs, "gatehouse:user:"+cliUser); m["active"] != "1" {
		t.Fatalf("after enable: %v", m)
	}
	// put --inactive without --email drops the email (flags after the id).
	if r := cli(t, rs, nil, "users", "put", cliUser, "--inactive"); r.code != 0 {
		t.Fatalf("put --inactive: %+v", r)
	}
	expectMessage("user:" + cliUser)
	if m := hgetall(t, rs, "gatehouse:user:"+cliUser); m["active"] != "0" || m["email"] != "" {
		t.Fatalf("after put --inactive: %v", m)
	}

	if r := cli(t, rs, nil, "users", "delete", cliUser); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	expectMessage("user:" + cliUser)
	for _, sub := range []string{"get", "enable", "disable", "delete"} {
		if r := cli(t, rs, nil, "users", sub, cliUser); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("%s of a missing user: %+v; want exit 1, not found", sub, r)
		}
	}
	if n := dbsize(t, rs); n != 0 {
		t.Errorf("enable/disable of a missing user created %d keys", n)
	}
	// delete publishes even for an absent record (a cache may still hold
	// it, if another tool deleted it without publishing); enable and
	// disable of an absent record publish nothing.
	expectMessage("user:" + cliUser)

	// Usage and validation errors: exit 2, nothing written.
	for _, args := range [][]string{
		{"users", "put", "not-a-uuid"},
		{"users", "put"},
		{"users", "put", cliUser, "extra"},
		{"users", "frobnicate", cliUser},
		{"users", "put", cliUser, "--email", "no-at-sign"},
		{"users", "export", "x"},
	} {
		if r := cli(t, rs, nil, args...); r.code != 2 || !strings.HasPrefix(r.stderr, "gatehouse: ") {
			t.Errorf("%v: %+v; want exit 2 with one line", args, r)
		}
	}
	if r := cli(t, nil, nil, "users", "get", cliUser); r.code != 2 || !strings.Contains(r.stderr, "GATEHOUSE_REDIS_URL") {
		t.Errorf("without Redis settings: %+v", r)
	}
	// Opaque ids are taken as they are.
	if r := cli(t, rs, map[string]string{"GATEHOUSE_USER_ID_FORMAT": "opaque"}, "users", "put", "alice"); r.code != 0 {
		t.Errorf("opaque id: %+v", r)
	}
	expectMessage("user:alice")
	// --redis-url beats the environment; a prefix applies to keys and channel.
	r = cli(t, nil, map[string]string{"GATEHOUSE_REDIS_URL": "redis://127.0.0.1:1/0"},
		"apps", "put", "meet-app", "--redis-url", rs.URL(), "--redis-prefix", "t1/")
	if r.code != 0 {
		t.Fatalf("apps put with --redis-url: %+v", r)
	}
	if m := hgetall(t, rs, "t1/app:meet-app"); m["active"] != "1" {
		t.Fatalf("app stored %v", m)
	}
	if r := cli(t, rs, map[string]string{"GATEHOUSE_REDIS_PREFIX": "t1/"}, "apps", "disable", "meet-app"); r.code != 0 {
		t.Fatalf("apps disable: %+v", r)
	}
	if m := hgetall(t, rs, "t1/app:meet-app"); m["active"] != "0" {
		t.Fatalf("app after disable %v", m)
	}
	// Redis down: exit 2, a one-line error without the password.
	r = cli(t, nil, map[string]string{"GATEHOUSE_REDIS_URL": "redis://u:pw-never-shown@127.0.0.1:1/0", "GATEHOUSE_REDIS_TIMEOUT": "100ms"},
		"users", "get", cliUser)
	if r.code != 2 || strings.Contains(r.stderr+r.stdout, "pw-never-shown") {
		t.Errorf("Redis down: %+v", r)
	}
}

func TestImportAndExport(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ids := []string{
		"11111111-1111-4111-8111-111111111111",
		"22222222-2222-4222-8222-222222222222",
		"33333333-3333-4333-8333-333333333333",
	}

	// A malformed line: reported with its number, nothing written.
	bad := write("bad.jsonl", `{"id":"`+ids[0]+`","active":true}
{"id":"`+ids[1]+`","active":true,"email":"b@example.com"}

{"id":"`+ids[2]+`","active":tru}
{"id":"`+ids[0]+`","active":false}
{"id":"x","active":true}
{"id":"`+ids[2]+`","actve":true}
`)
	r := cli(t, rs, nil, "users", "import", bad)
	if r.code != 1 {
		t.Fatalf("import with bad lines: %+v", r)
	}
	for _, want := range []string{"bad.jsonl:4: not a JSON record", "bad.jsonl:5: duplicate id " + ids[0] + " (first on line 1)",
		"bad.jsonl:6: id \"x\" is not a UUID", "bad.jsonl:7: not a JSON record: unknown field \"actve\""} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "6 lines read (jsonl), 0 written, 4 rejected; nothing written") {
		t.Errorf("report: %q", r.stdout)
	}
	if n := dbsize(t, rs); n != 0 {
		t.Fatalf("a rejected import wrote %d keys", n)
	}
	// --skip-invalid writes the valid ones, still exits 1.
	r = cli(t, rs, nil, "users", "import", "--skip-invalid", bad)
	if r.code != 1 || !strings.Contains(r.stdout, "6 lines read (jsonl), 2 written, 4 rejected") {
		t.Fatalf("--skip-invalid: %+v", r)
	}
	if m := hgetall(t, rs, "gatehouse:user:"+ids[1]); m["active"] != "1" || m["email"] != "b@example.com" {
		t.Fatalf("imported %v", m)
	}

	// CSV, columns in any order, upper-case UUIDs normalised.
	csvFile := write("users.csv", "email,id,active\nc@example.com,"+strings.ToUpper(ids[2])+",0\n,"+ids[0]+",true\n")
	r = cli(t, rs, nil, "users", "import", csvFile)
	if r.code != 0 || !strings.Contains(r.stdout, "2 lines read (csv), 2 written, 0 rejected") {
		t.Fatalf("CSV import: %+v", r)
	}
	if m := hgetall(t, rs, "gatehouse:user:"+ids[2]); m["active"] != "0" || m["email"] != "c@example.com" {
		t.Fatalf("CSV record %v", m)
	}
	badCSV := write("bad.csv", "id,active\n"+ids[0]+",1\n"+ids[1]+",maybe\n"+ids[2]+"\n")
	r = cli(t, rs, nil, "users", "import", badCSV)
	if r.code != 1 || !strings.Contains(r.stderr, "bad.csv:3: active \"maybe\"") || !strings.Contains(r.stderr, "bad.csv:4: 1 fields, the header has 2") {
		t.Fatalf("bad CSV: %+v", r)
	}

	// export prints every record as JSON lines.
	r = cliWithin(t, bulkBound, rs, nil, "users", "export")
	if r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("export: %d lines, want 3:\n%s", len(lines), r.stdout)
	}
	// The export re-imports as it is.
	again := write("export.jsonl", r.stdout)
	if r := cli(t, rs, nil, "users", "import", again); r.code != 0 || !strings.Contains(r.stdout, "3 written") {
		t.Fatalf("re-import of the export: %+v", r)
	}
	// Apps import (ids taken as written).
	apps := write("apps.jsonl", `{"id":"meet","active":true}`+"\n"+`{"id":"legacy","active":false}`+"\n")
	if r := cli(t, rs, nil, "apps", "import", apps); r.code != 0 {
		t.Fatalf("apps import: %+v", r)
	}
	if m := hgetall(t, rs, "gatehouse:app:legacy"); m["active"] != "0" {
		t.Fatalf("app %v", m)
	}
	if r := cli(t, rs, nil, "apps", "export"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("apps export: %+v", r)
	}
}

// TestImport100k: the issue asks for an import of 100 000 users "in
// seconds". The figure is logged; the bound only catches a pathological
// slowdown (one round trip per record would take far longer under -race).
func TestImport100k(t *testing.T) {
	rs := redistest.Start(t)
	const n = 100_000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"%08x-0000-4000-8000-%012x","active":%t,"email":"u%d@example.com"}`+"\n", i, i, i%10 != 0, i)
	}
	p := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	r := cliWithin(t, bulkBound, rs, nil, "users", "import", p)
	took := time.Since(began)
	if r.code != 0 || !strings.Contains(r.stdout, "100000 lines read (jsonl), 100000 written, 0 rejected") {
		t.Fatalf("import: %+v", r)
	}
	t.Logf("imported %d users in %v", n, took)
	if progress := strings.Count(r.stderr, "gatehouse: imported "); progress < 5 || !strings.Contains(r.stderr, "imported 100000/100000 users") {
		t.Errorf("%d progress lines:\n%s", progress, r.stderr)
	}
	if got := dbsize(t, rs); got != n {
		t.Fatalf("%d keys after import, want %d", got, n)
	}
	if m := hgetall(t, rs, fmt.Sprintf("gatehouse:user:%08x-0000-4000-8000-%012x", 77777, 77777)); m["active"] != "1" || m["email"] != "u77777@example.com" {
		t.Fatalf("record 77777: %v", m)
	}
	began = time.Now()
	r = cli(t, rs, nil, "users", "export")
	if r.code != 0 || strings.Count(r.stdout, "\n") != n {
		t.Fatalf("export: code %d, %d lines", r.code, strings.Count(r.stdout, "\n"))
	}
	t.Logf("exported %d users in %v", n, time.Since(began))
}
