package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// decision is what the decision core gets from the directory for one id:
// a status, or "unavailable" (an error: the request fails closed with 503).
// A record lookups cannot read (userstore.ErrInvalidRecord) is denied as
// inactive, as the cache in front of the store answers it.
type decision string

func decide(t *testing.T, rs *redistest.Server, kind userstore.Kind, id string) decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := redisstore.New(rs.Client(), redisstore.Options{Timeout: 5 * time.Second}).Lookup(ctx, kind, id)
	if errors.Is(err, userstore.ErrUnavailable) {
		return "unavailable"
	}
	if errors.Is(err, userstore.ErrInvalidRecord) {
		return "inactive"
	}
	if err != nil {
		t.Fatalf("lookup %s %q: %v", kind, id, err)
	}
	return decision(st.String())
}

// subDecision is what the decision core gets for one OIDC subject: no user,
// or the user's id and that user's decision. The store checks ids as
// serve's does (canonical UUIDs unless opaque).
func subDecision(t *testing.T, rs *redistest.Server, vars map[string]string, sub string) decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := redisstore.Options{Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if vars["GATEHOUSE_USER_ID_FORMAT"] != "opaque" {
		opts.NormalizeUserID = authz.NormalizeUUID
	}
	id, found, err := redisstore.New(rs.Client(), opts).UserBySub(ctx, sub)
	switch {
	case err != nil:
		return "unavailable"
	case !found:
		return "no user"
	}
	return decision(id + " " + string(decide(t, rs, userstore.User, id)))
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func do(t *testing.T, rs *redistest.Server, cmds ...[]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range cmds {
		if err := rs.Client().Do(ctx, c...).Err(); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
	}
}

// roundTrip runs "export" on src and "import" of its output into dst, as
// `gatehouse users export | gatehouse users import -` would.
func roundTrip(t *testing.T, noun string, src, dst *redistest.Server, vars map[string]string, exportArgs ...string) (exp, imp cliResult) {
	t.Helper()
	exp = cli(t, src, vars, append([]string{noun, "export"}, exportArgs...)...)
	if exp.code == 2 {
		t.Fatalf("export failed: %+v", exp)
	}
	imp = cli(t, dst, vars, noun, "import", writeFile(t, exp.stdout))
	return exp, imp
}

// Item 13: an upper-case key written by another client is invisible to
// lookups; a round trip must not make it an allowed user.
func TestRoundTripUpperCaseKeyStaysInvisible(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	upper := strings.ToUpper(cliUser)
	do(t, src, []any{"HSET", "gatehouse:user:" + upper, "active", "1"})
	if d := decide(t, src, userstore.User, cliUser); d != "not_found" {
		t.Fatalf("before: %s", d)
	}
	exp, imp := roundTrip(t, "users", src, dst, nil)
	if d := decide(t, dst, userstore.User, cliUser); d != "not_found" {
		t.Fatalf("after export|import the user is %s, was not_found (export %+v, import %+v)", d, exp, imp)
	}
	if exp.code != 1 || !strings.Contains(exp.stderr, strconv.Quote("gatehouse:user:"+upper)) || !strings.Contains(exp.stderr, "1 key skipped") {
		t.Errorf("export of a non-canonical key: %+v; want it listed, counted and exit 1", exp)
	}
	if r := cli(t, src, nil, "users", "export", "--allow-skipped"); r.code != 0 || !strings.Contains(r.stderr, "1 key skipped") {
		t.Errorf("export --allow-skipped: %+v; want exit 0, still reported", r)
	}
}

// Item 13: a disabled canonical key with an active upper-case twin: the
// user stays disabled whatever order SCAN returns them in.
func TestRoundTripTwinStaysDisabled(t *testing.T) {
	for i := range 5 {
		src, dst := redistest.Start(t), redistest.Start(t)
		// Variants of the twin spelling change the hash order of SCAN.
		twin := []string{strings.ToUpper(cliUser), "{" + cliUser + "}", "urn:uuid:" + cliUser,
			strings.ReplaceAll(cliUser, "-", ""), "{" + strings.ToUpper(cliUser) + "}"}[i]
		do(t, src, []any{"HSET", "gatehouse:user:" + cliUser, "active", "0"}, []any{"HSET", "gatehouse:user:" + twin, "active", "1"})
		exp := cli(t, src, nil, "users", "export")
		imp := cli(t, dst, nil, "users", "import", "--skip-invalid", writeFile(t, exp.stdout))
		if d := decide(t, dst, userstore.User, cliUser); d != "inactive" {
			t.Fatalf("twin %q: after the round trip the user is %s, was inactive (export %+v, import %+v)", twin, d, exp, imp)
		}
	}
}

// Item 14: export writes what lookups see, exactly, and reports every key
// it leaves out; import takes back all it writes.
func TestExportIsImportableExactly(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
	}
	key := func(i int) string { return "gatehouse:user:" + ids[i] }
	do(t, src,
		[]any{"HSET", key(0), "active", "1", "email", "Ann Example <ann@example.com>"}, // a space
		[]any{"HSET", key(1), "active", "0", "email", "bob@example.com", "team", "blue", "note", "ünïcode \t tab"},
		[]any{"HSET", key(2), "active", "1", "email", ""}, // an empty email field
		[]any{"HSET", key(3), "email", "no-active@example.com"},
		[]any{"SET", key(4), "a string"},
		[]any{"HSET", key(5), "active", "1", "email", "bad\xffutf8@example.com"},
		[]any{"HSET", key(6), "active", "1", "email", "x"}, // no @
		[]any{"HSET", key(7), "active", "1", "nick\xfe", "v"},
	)
	before := map[string]decision{}
	for _, id := range ids {
		before[id] = decide(t, src, userstore.User, id)
	}
	exp, imp := roundTrip(t, "users", src, dst, nil)
	if imp.code != 0 {
		t.Fatalf("import of the export: %+v\nexport:\n%s", imp, exp.stdout)
	}
	// Exact for every record export could carry as it is.
	for _, i := range []int{0, 1, 2, 6} {
		if a, b := hgetall(t, src, key(i)), hgetall(t, dst, key(i)); !maps.Equal(a, b) {
			t.Errorf("%s: %q before, %q after the round trip", key(i), a, b)
		}
	}
	// The others keep their decision, and each is named and counted; the
	// exit code says so.
	for _, i := range []int{3, 4, 5, 7} {
		if !strings.Contains(exp.stderr, strconv.Quote(key(i))) {
			t.Errorf("export did not report %s:\n%s", key(i), exp.stderr)
		}
	}
	if exp.code != 1 || !strings.Contains(exp.stderr, "0 keys skipped, 4 exported inexactly") {
		t.Errorf("export: code %d, stderr:\n%s", exp.code, exp.stderr)
	}
	if m := hgetall(t, dst, key(5)); m["active"] != "1" || len(m) != 1 {
		t.Errorf("%s after the round trip: %q, want active 1 and the invalid email left out", key(5), m)
	}
	for _, id := range ids {
		if after := decide(t, dst, userstore.User, id); after != before[id] {
			t.Errorf("%s: %s before, %s after", id, before[id], after)
		}
	}
}

func dbsizeKey(t *testing.T, rs *redistest.Server, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := rs.Client().Exists(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Item 13's invariant as a property: random mixes of canonical,
// non-canonical, wrong-typed, active-less and extra-field keys; for every
// id lookups can ask for, the decision after export|import equals the
// decision before.
func TestRoundTripKeepsEveryDecision(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	subsFound := 0
	defer func() {
		t.Logf("%d subs found a user before the round trips", subsFound)
		if subsFound < 10 {
			t.Errorf("only %d subs found a user before the round trips: the subs are barely tested", subsFound)
		}
	}()
	for round := range 12 {
		seed := uint64(round)*7919 + 17
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		do(t, src, []any{"FLUSHALL"})
		do(t, dst, []any{"FLUSHALL"})
		kinds := []struct {
			kind userstore.Kind
			noun string
			vars map[string]string
		}{
			{userstore.User, "users", nil},
			{userstore.App, "apps", nil},
			{userstore.User, "users", map[string]string{"GATEHOUSE_USER_ID_FORMAT": "opaque"}},
		}
		k := kinds[round%len(kinds)]
		prefix := "gatehouse:" + k.kind.String() + ":"
		// ids are those the decision core can look up: canonical UUIDs
		// for users by default; any header-safe spelling when opaque.
		var ids []string
		var cmds [][]any
		// Users carry subs: some indexed as writers index them, some not,
		// and index keys of every kind of wrong.
		var subs []string
		if k.kind == userstore.User {
			for i := range 12 {
				subs = append(subs, "sub-"+strconv.Itoa(i))
			}
			subs = append(subs, "bad\x01sub", strings.Repeat("s", 300), "ünï sub")
		}
		withSub := func(key, sp string, cmd []any) []any {
			if len(subs) == 0 || rng.IntN(2) == 0 {
				return cmd
			}
			sub := subs[rng.IntN(len(subs))]
			if rng.IntN(8) == 0 {
				sub = ""
			}
			if rng.IntN(3) != 0 {
				cmds = append(cmds, []any{"SET", "gatehouse:sub:" + sub, sp})
			}
			return append(cmd, "sub", sub)
		}
		for i := range 40 {
			id := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), i, rng.IntN(4096), rng.IntN(4096), rng.Uint64()&0xffffffffffff)
			if k.kind == userstore.App || k.vars != nil {
				id = []string{"app-" + strconv.Itoa(i), "App " + strconv.Itoa(i), "ünï-" + strconv.Itoa(i), id}[rng.IntN(4)]
			}
			spellings := []string{id, strings.ToUpper(id), "{" + id + "}", " " + id, id + "\x01"}
			if k.kind == userstore.User && k.vars == nil {
				ids = append(ids, id)
			} else {
				ids = append(ids, spellings[:4]...)
			}
			for _, sp := range spellings {
				if rng.IntN(3) != 0 {
					continue
				}
				key := prefix + sp
				switch rng.IntN(7) {
				case 0:
					cmds = append(cmds, withSub(key, sp, []any{"HSET", key, "active", "1"}))
				case 1:
					cmds = append(cmds, withSub(key, sp, []any{"HSET", key, "active", "0", "email", "a b@example.com"}))
				case 2:
					cmds = append(cmds, []any{"HSET", key, "active", []string{"yes", "true", " 1", ""}[rng.IntN(4)]})
				case 3:
					cmds = append(cmds, []any{"HSET", key, "email", "only@example.com"})
				case 4:
					cmds = append(cmds, []any{"SET", key, "1"})
				case 5:
					cmds = append(cmds, []any{"SADD", key, "active"})
				case 6:
					cmds = append(cmds, withSub(key, sp, []any{"HSET", key, "active", strconv.Itoa(rng.IntN(2)), "extra", "x", "active2", "1"}))
				}
			}
		}
		// Index entries nobody's record backs, of other types, or empty.
		for _, sub := range subs {
			key := "gatehouse:sub:" + sub
			switch rng.IntN(8) {
			case 0:
				cmds = append(cmds, []any{"SET", key, ids[rng.IntN(len(ids))]})
			case 1:
				cmds = append(cmds, []any{"SADD", key, "x"})
			case 2:
				cmds = append(cmds, []any{"SET", key, ""})
			}
		}
		// Later commands on the same key would fail on a type clash; run
		// them in order, dropping clashes, as several clients would leave.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, c := range cmds {
			_ = src.Client().Do(ctx, c...).Err()
		}
		cancel()
		before := map[string]decision{}
		for _, id := range ids {
			before[id] = decide(t, src, k.kind, id)
		}
		subsBefore := map[string]decision{}
		for _, sub := range subs {
			subsBefore[sub] = subDecision(t, src, k.vars, sub)
			if subsBefore[sub] != "no user" {
				subsFound++
			}
		}
		exp, imp := roundTrip(t, k.noun, src, dst, k.vars, "--allow-skipped")
		if exp.code != 0 || imp.code != 0 {
			t.Fatalf("round %d (seed %d): export %+v\nimport %+v", round, seed, exp, imp)
		}
		for _, id := range ids {
			if after := decide(t, dst, k.kind, id); after != before[id] {
				t.Errorf("round %d (seed %d) %s %q: %s before, %s after export|import", round, seed, k.kind, id, before[id], after)
			}
		}
		for _, sub := range subs {
			if after := subDecision(t, dst, k.vars, sub); after != subsBefore[sub] {
				t.Errorf("round %d (seed %d) sub %.20q: %s before, %s after export|import", round, seed, sub, subsBefore[sub], after)
			}
		}
	}
}

// Item 15: a batch with a wrong-typed key. Today the other records are
// written while the report says 0 written, and nothing is published.
func TestImportWrongTypedKey(t *testing.T) {
	rs := redistest.Start(t)
	ids := []string{
		"11111111-1111-4111-8111-111111111111",
		"22222222-2222-4222-8222-222222222222",
		"33333333-3333-4333-8333-333333333333",
	}
	do(t, rs, []any{"SET", "gatehouse:user:" + ids[1], "a string"})
	file := writeFile(t, `{"id":"`+ids[0]+`","active":false}
{"id":"`+ids[1]+`","active":false}
{"id":"`+ids[2]+`","active":false}
`)
	// Default: the key is a rejected line, and nothing is written.
	r := cli(t, rs, nil, "users", "import", file)
	if r.code != 1 || !strings.Contains(r.stdout, "3 lines read (jsonl), 0 written, 1 rejected") ||
		!strings.Contains(r.stderr, ":2: ") || !strings.Contains(r.stderr, "string") {
		t.Fatalf("import over a wrong-typed key: %+v", r)
	}
	if n := dbsizeKey(t, rs, "gatehouse:user:"+ids[0]); n != 0 {
		t.Fatalf("a rejected import wrote %s", ids[0])
	}
	// --skip-invalid: the others are written, reported, and published.
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	sub := rs.Client().Subscribe(ctx, "gatehouse:invalidate")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	r = cli(t, rs, nil, "users", "import", "--skip-invalid", file)
	if r.code != 1 || !strings.Contains(r.stdout, "3 lines read (jsonl), 2 written, 1 rejected") {
		t.Fatalf("--skip-invalid over a wrong-typed key: %+v", r)
	}
	for _, id := range []string{ids[0], ids[2]} {
		if m := hgetall(t, rs, "gatehouse:user:"+id); m["active"] != "0" {
			t.Errorf("%s = %v", id, m)
		}
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil || msg.Payload != "user:"+id {
			t.Fatalf("invalidation %v, %v; want user:%s", msg, err, id)
		}
	}
}

// Item 12: a change acknowledged by a master alone is reported: with a
// replica that does not answer, the command warns and exits 3.
func TestWriteWaitsForAReplica(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	waits := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		info, err := master.Client().Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(info, "cmdstat_wait:calls=")
		if !ok {
			return 0
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		return n
	}
	// A live replica gets a bound far above its usual delay (the suite
	// runs under -race on busy machines); a paused one a short bound.
	if r := cli(t, master, nil, "users", "put", cliUser, "--replica-wait", "5s"); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("put with a live replica: %+v", r)
	}
	if n := waits(); n != 1 {
		t.Errorf("%d WAITs after put with a replica, want 1", n)
	}
	replica.Pause()
	defer replica.Resume()
	r := cli(t, master, nil, "users", "disable", cliUser, "--replica-wait", "300ms")
	if r.code != exitNotReplicated || !strings.Contains(r.stderr, "no replica acknowledged") || !strings.Contains(r.stdout, "disabled") {
		t.Fatalf("disable with a paused replica: %+v; want exit %d and a warning", r, exitNotReplicated)
	}
	if m := hgetall(t, master, "gatehouse:user:"+cliUser); m["active"] != "0" {
		t.Fatalf("master holds %v", m)
	}
	// An import waits once, after its last batch.
	var b strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&b, `{"id":"%08x-0000-4000-8000-000000000000","active":true}`+"\n", i)
	}
	w0 := waits()
	r = cli(t, master, nil, "users", "import", "--replica-wait", "300ms", writeFile(t, b.String()))
	if r.code != exitNotReplicated || strings.Count(r.stderr, "no replica acknowledged") != 1 || !strings.Contains(r.stdout, "2500 written") {
		t.Fatalf("import with a paused replica: %+v", r)
	}
	if n := waits() - w0; n != 1 {
		t.Errorf("import of 3 batches sent %d WAITs, want 1", n)
	}
	replica.Resume()
	if r := cli(t, master, nil, "users", "enable", cliUser, "--replica-wait", "5s"); r.code != 0 {
		t.Fatalf("enable after the replica came back: %+v", r)
	}

	// Without replicas nothing waits.
	alone := redistest.Start(t)
	if r := cli(t, alone, nil, "users", "put", cliUser); r.code != 0 {
		t.Fatalf("put without replicas: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if info, _ := alone.Client().Info(ctx, "commandstats").Result(); strings.Contains(info, "cmdstat_wait") {
		t.Errorf("a master without replicas got a WAIT")
	}
}
