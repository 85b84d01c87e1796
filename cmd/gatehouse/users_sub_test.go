package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
)

func redisGet(t *testing.T, rs *redistest.Server, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _ := rs.Client().Get(ctx, key).Result()
	return v
}

// Users' subs through the directory commands: put --sub, get, import (JSON
// lines and CSV), export, and the index kept with them.
func TestUsersSubCommands(t *testing.T) {
	rs := redistest.Start(t)
	const other = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	if r := cli(t, rs, nil, "users", "put", strings.ToUpper(cliUser), "--sub", "alice@idp"); r.code != 0 {
		t.Fatalf("put --sub: %+v", r)
	}
	if v := redisGet(t, rs, "gatehouse:sub:alice@idp"); v != cliUser {
		t.Fatalf("index = %q, want the canonical id", v)
	}
	if r := cli(t, rs, nil, "users", "get", cliUser); r.code != 0 || !strings.Contains(r.stdout, `"sub":"alice@idp"`) {
		t.Fatalf("get: %+v", r)
	}
	// A sub another user has: refused, nothing written.
	if r := cli(t, rs, nil, "users", "put", other, "--sub", "alice@idp"); r.code != 2 || !strings.Contains(r.stderr, "belongs to another user") {
		t.Fatalf("put of a taken sub: %+v", r)
	}
	if n := dbsizeKey(t, rs, "gatehouse:user:"+other); n != 0 {
		t.Fatal("a refused put wrote the record")
	}
	for _, bad := range []string{"a\nb", strings.Repeat("x", 256)} {
		if r := cli(t, rs, nil, "users", "put", other, "--sub", bad); r.code != 2 {
			t.Fatalf("put --sub %.20q: %+v", bad, r)
		}
	}
	if r := cli(t, rs, nil, "apps", "put", "meet-web", "--sub", "x"); r.code != 2 {
		t.Fatalf("apps put --sub: %+v", r)
	}
	// put without --sub removes the sub and its index entry.
	if r := cli(t, rs, nil, "users", "put", cliUser); r.code != 0 {
		t.Fatalf("put: %+v", r)
	}
	if n := dbsizeKey(t, rs, "gatehouse:sub:alice@idp"); n != 0 {
		t.Fatal("the removed sub is still indexed")
	}

	// Import: a taken sub is a rejected line; by default nothing is
	// written, --skip-invalid writes the others.
	if r := cli(t, rs, nil, "users", "put", cliUser, "--sub", "alice@idp"); r.code != 0 {
		t.Fatalf("put: %+v", r)
	}
	const third = "7ca7b810-9dad-11d1-80b4-00c04fd430c8"
	file := writeFile(t, `{"id":"`+other+`","active":true,"sub":"alice@idp"}
{"id":"`+third+`","active":true,"sub":"carol@idp"}
`)
	if r := cli(t, rs, nil, "users", "import", file); r.code != 1 || !strings.Contains(r.stderr, ":1: its sub belongs to another user") ||
		!strings.Contains(r.stdout, "0 written, 1 rejected") {
		t.Fatalf("import of a taken sub: %+v", r)
	}
	if n := dbsizeKey(t, rs, "gatehouse:user:"+third); n != 0 {
		t.Fatal("a rejected import wrote a record")
	}
	if r := cli(t, rs, nil, "users", "import", "--skip-invalid", file); r.code != 1 || !strings.Contains(r.stdout, "1 written, 1 rejected") {
		t.Fatalf("import --skip-invalid: %+v", r)
	}
	if v := redisGet(t, rs, "gatehouse:sub:carol@idp"); v != third {
		t.Fatalf("carol's index = %q", v)
	}
	// CSV with a sub column moves alice's sub to the other user in one
	// file: the file is the state.
	csv := writeFile(t, "id,active,sub\n"+cliUser+",1,alice2@idp\n"+other+",1,alice@idp\n")
	if r := cli(t, rs, nil, "users", "import", csv); r.code != 0 {
		t.Fatalf("CSV import moving a sub: %+v", r)
	}
	if a, b := redisGet(t, rs, "gatehouse:sub:alice@idp"), redisGet(t, rs, "gatehouse:sub:alice2@idp"); a != other || b != cliUser {
		t.Fatalf("after the CSV import: alice@idp -> %q, alice2@idp -> %q", a, b)
	}

	// Export writes sub as a field of its own, and import takes it back.
	exp := cli(t, rs, nil, "users", "export")
	if exp.code != 0 || !strings.Contains(exp.stdout, `"sub":"alice2@idp"`) || strings.Contains(exp.stdout, `"extra"`) {
		t.Fatalf("export: %+v", exp)
	}
	dst := redistest.Start(t)
	if r := cli(t, dst, nil, "users", "import", writeFile(t, exp.stdout)); r.code != 0 {
		t.Fatalf("import of the export: %+v", r)
	}
	for _, key := range []string{"gatehouse:user:" + cliUser, "gatehouse:user:" + other, "gatehouse:user:" + third} {
		if a, b := hgetall(t, rs, key), hgetall(t, dst, key); a["sub"] != b["sub"] || a["sub"] == "" {
			t.Errorf("%s: sub %q before, %q after", key, a["sub"], b["sub"])
		}
	}
	for _, sub := range []string{"alice@idp", "alice2@idp", "carol@idp"} {
		if a, b := redisGet(t, rs, "gatehouse:sub:"+sub), redisGet(t, dst, "gatehouse:sub:"+sub); a != b || a == "" {
			t.Errorf("index of %s: %q before, %q after", sub, a, b)
		}
	}
	// A sub whose index names another id is left out, reported.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rs.Client().Set(ctx, "gatehouse:sub:carol@idp", other, 0).Err(); err != nil {
		t.Fatal(err)
	}
	exp = cli(t, rs, nil, "users", "export")
	if exp.code != 1 || strings.Contains(exp.stdout, "carol@idp") || !strings.Contains(exp.stderr, `"sub" field left out: lookups by it do not find this user`) {
		t.Fatalf("export of a sub the index does not back: %+v", exp)
	}
	// delete takes the index entry with it.
	if r := cli(t, rs, nil, "users", "delete", other); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if n := dbsizeKey(t, rs, "gatehouse:sub:alice@idp"); n != 0 {
		t.Fatal("the deleted user's sub is still indexed")
	}
}
