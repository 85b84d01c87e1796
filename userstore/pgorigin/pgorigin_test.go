package pgorigin

import (
	"context"
	"errors"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/pgtest"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Meet's schema, reduced to what gatehouse reads plus a column it must not
// (email: the least-privilege role cannot read it).
const meetSchema = `
CREATE TABLE meet_user (
	id uuid PRIMARY KEY,
	sub varchar(255) UNIQUE,
	email text NOT NULL DEFAULT '',
	is_active boolean NOT NULL DEFAULT true
);
CREATE TABLE meet_application (
	id serial PRIMARY KEY,
	client_id varchar(100) NOT NULL UNIQUE,
	name text NOT NULL DEFAULT '',
	is_active boolean
);
-- Meet before March 2026: the application's flag is "active".
CREATE SCHEMA old;
CREATE TABLE old.meet_user (LIKE meet_user INCLUDING ALL);
CREATE TABLE old.meet_application (
	id serial PRIMARY KEY,
	client_id varchar(100) NOT NULL UNIQUE,
	active boolean NOT NULL DEFAULT true
);
CREATE TABLE dup (k text, v boolean);

CREATE ROLE gatehouse LOGIN PASSWORD 'reader-secret/@:';
GRANT SELECT (id, is_active, sub) ON meet_user TO gatehouse;
GRANT SELECT (client_id, is_active) ON meet_application TO gatehouse;
GRANT SELECT ON dup TO gatehouse;
-- A role granted what gatehouse read before subjects: no sub column.
CREATE ROLE gatehouse_nosub LOGIN PASSWORD 'reader-secret/@:';
GRANT SELECT (id, is_active) ON meet_user TO gatehouse_nosub;
GRANT SELECT (client_id, is_active) ON meet_application TO gatehouse_nosub;
CREATE ROLE gatehouse_old LOGIN PASSWORD 'reader-secret/@:' IN ROLE gatehouse;
GRANT USAGE ON SCHEMA old TO gatehouse_old;
GRANT SELECT (id, is_active, sub) ON old.meet_user TO gatehouse_old;
GRANT SELECT (client_id, active) ON old.meet_application TO gatehouse_old;
ALTER ROLE gatehouse_old SET search_path = old;
`

const (
	readerPassword = "reader-secret/@:"
	activeUser     = "0b6f3c1e-6a43-4c55-9f0e-3f4f1b7d1a01"
	inactiveUser   = "0b6f3c1e-6a43-4c55-9f0e-3f4f1b7d1a02"
	unknownUser    = "0b6f3c1e-6a43-4c55-9f0e-3f4f1b7d1aff"
)

const meetData = `
INSERT INTO meet_user (id, sub, email, is_active) VALUES
	('` + activeUser + `', 'alice@idp', 'a@example.org', true),
	('` + inactiveUser + `', NULL, 'b@example.org', false);
INSERT INTO meet_application (client_id, is_active) VALUES
	('app-active', true), ('app-inactive', false), ('app-null', NULL);
INSERT INTO old.meet_application (client_id, active) VALUES
	('old-active', true), ('old-inactive', false);
INSERT INTO dup VALUES ('twice', true), ('twice', true);
`

type fixture struct {
	pg           *pgtest.Server
	passwordFile string
}

// startMeet starts PostgreSQL with Meet's tables and a least-privilege
// role whose password is in a file.
func startMeet(t testing.TB) *fixture {
	t.Helper()
	pg := pgtest.Start(t)
	pg.Exec(t, meetSchema)
	pg.Exec(t, meetData)
	pwfile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwfile, []byte(readerPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fixture{pg: pg, passwordFile: pwfile}
}

// open returns an Origin as the reader role, its password read from the
// file, and closes it when the test ends.
func (f *fixture) open(t testing.TB, opts Options) *Origin {
	t.Helper()
	o, err := f.tryOpen(t, "gatehouse", opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return o
}

func (f *fixture) tryOpen(t testing.TB, role string, opts Options) (*Origin, error) {
	t.Helper()
	if opts.URL == "" {
		opts.URL = f.pg.URLFor(role, "")
	}
	if opts.Password == "" && opts.PasswordFile == "" {
		opts.PasswordFile = f.passwordFile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := New(ctx, opts)
	if err == nil {
		t.Cleanup(o.Close)
	}
	return o, err
}

func lookup(t *testing.T, d userstore.Directory, kind userstore.Kind, id string) (userstore.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Lookup(ctx, kind, id)
}

// TestPostgres runs against one real PostgreSQL server (starting one takes
// seconds): its subtests share it, and the one that restarts it runs last.
func TestPostgres(t *testing.T) {
	f := startMeet(t)
	t.Run("Lookups", func(t *testing.T) { testLookups(t, f) })
	t.Run("Subjects", func(t *testing.T) { testSubjects(t, f) })
	t.Run("LegacyActiveColumn", func(t *testing.T) { testLegacy(t, f) })
	t.Run("QueryShapeRefused", func(t *testing.T) { testShapes(t, f) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, f) })
	t.Run("Deadline", func(t *testing.T) { testDeadline(t, f) })
	t.Run("PoolBounded", func(t *testing.T) { testPoolBounded(t, f) })
	t.Run("Notifications", func(t *testing.T) { testNotifications(t, f) })
	t.Run("SilentConnection", func(t *testing.T) { testSilent(t, f) })
	t.Run("ReconnectAfterRestart", func(t *testing.T) { testRestart(t, f) })
}

func testLookups(t *testing.T, f *fixture) {
	o := f.open(t, Options{})
	cases := []struct {
		kind    userstore.Kind
		id      string
		want    userstore.Status
		invalid bool
	}{
		{userstore.User, activeUser, userstore.Active, false},
		{userstore.User, inactiveUser, userstore.Inactive, false},
		{userstore.User, unknownUser, userstore.NotFound, false},
		// PostgreSQL reads a UUID in any spelling it accepts, as Meet does.
		{userstore.User, strings.ToUpper(activeUser), userstore.Active, false},
		{userstore.User, "{" + activeUser + "}", userstore.Active, false},
		// Not a UUID: no such user can exist (SQLSTATE 22P02), not an outage.
		{userstore.User, "not-a-uuid", userstore.NotFound, false},
		{userstore.User, "' OR true --", userstore.NotFound, false},
		{userstore.User, "", userstore.NotFound, false},
		{userstore.User, strings.Repeat("a", MaxIDLength+1), userstore.NotFound, false},
		{userstore.App, "app-active", userstore.Active, false},
		{userstore.App, "app-inactive", userstore.Inactive, false},
		{userstore.App, "app-unknown", userstore.NotFound, false},
		{userstore.App, "APP-ACTIVE", userstore.NotFound, false}, // client ids compare exactly
		{userstore.App, "app-active' OR 'x'='x", userstore.NotFound, false},
		{userstore.App, "bad\xff-utf8", userstore.NotFound, false},
		{userstore.App, "nul\x00byte", userstore.NotFound, false},
		{userstore.App, strings.Repeat("x", 101), userstore.NotFound, false},
		// A NULL flag is not "active": fail closed, as the record's problem.
		{userstore.App, "app-null", userstore.Inactive, true},
	}
	for _, c := range cases {
		got, err := lookup(t, o, c.kind, c.id)
		if c.invalid {
			if !errors.Is(err, userstore.ErrInvalidRecord) || errors.Is(err, userstore.ErrUnavailable) {
				t.Errorf("Lookup(%s, %.40q) error = %v, want ErrInvalidRecord only", c.kind, c.id, err)
			}
		} else if err != nil {
			t.Errorf("Lookup(%s, %.40q) error = %v", c.kind, c.id, err)
		}
		if got != c.want {
			t.Errorf("Lookup(%s, %.40q) = %v, want %v", c.kind, c.id, got, c.want)
		}
	}
	if _, err := lookup(t, o, userstore.Kind(9), "x"); err == nil {
		t.Error("Lookup of an unknown kind: no error")
	}

	// A custom query on a key that is not unique: two rows are ambiguous.
	dup := f.open(t, Options{AppQuery: "SELECT v FROM dup WHERE k = $1"})
	if got, err := lookup(t, dup, userstore.App, "twice"); got != userstore.Inactive || !errors.Is(err, userstore.ErrInvalidRecord) {
		t.Errorf("two rows: Lookup = %v, %v; want Inactive, ErrInvalidRecord", got, err)
	}
}

func testLegacy(t *testing.T, f *fixture) {
	// The default application query fails against the old schema: the
	// column is named "active" there.
	if _, err := f.tryOpen(t, "gatehouse_old", Options{}); err == nil {
		t.Fatal("New with the default app query on the old schema: no error")
	}
	o, err := f.tryOpen(t, "gatehouse_old", Options{AppQuery: LegacyAppQuery})
	if err != nil {
		t.Fatalf("New with LegacyAppQuery: %v", err)
	}
	for id, want := range map[string]userstore.Status{
		"old-active":   userstore.Active,
		"old-inactive": userstore.Inactive,
		"app-active":   userstore.NotFound, // only in the new schema
	} {
		if got, err := lookup(t, o, userstore.App, id); err != nil || got != want {
			t.Errorf("Lookup(app, %q) = %v, %v; want %v", id, got, err, want)
		}
	}
}

func testShapes(t *testing.T, f *fixture) {
	cases := map[string]struct {
		opts Options
		want string
	}{
		"two columns":  {Options{UserQuery: "SELECT is_active, id FROM meet_user WHERE id = $1"}, "returns 2 columns"},
		"text column":  {Options{AppQuery: "SELECT client_id FROM meet_application WHERE client_id = $1"}, "want boolean"},
		"no column":    {Options{UserQuery: "DELETE FROM meet_user WHERE id = $1"}, "returns 0 columns"},
		"no parameter": {Options{UserQuery: "SELECT is_active FROM meet_user LIMIT 1"}, "takes 0 parameters"},
		"two parameters": {Options{UserQuery: "SELECT is_active FROM meet_user WHERE id = $1 AND id = $2"},
			"takes 2 parameters"},
		"unreadable column": {Options{UserQuery: "SELECT email = '' FROM meet_user WHERE id = $1"}, "refused"},
		"missing table":     {Options{AppQuery: "SELECT active FROM meet_application WHERE client_id = $1"}, "refused"},
		"syntax":            {Options{UserQuery: "SELEC is_active"}, "refused"},
	}
	for name, c := range cases {
		_, err := f.tryOpen(t, "gatehouse", c.opts)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New error = %v, want a QueryError saying %q", name, err, c.want)
		}
	}
	// A statement that writes is refused even when it has the shape and
	// the role may run it: New tries each query in a read-only transaction.
	f.pg.Exec(t, "GRANT UPDATE ON dup TO gatehouse")
	_, err := f.tryOpen(t, "gatehouse", Options{AppQuery: "UPDATE dup SET v = false WHERE k = $1 RETURNING v"})
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("an UPDATE as the app query: New error = %v, want a QueryError (read-only transaction)", err)
	}
}

func testSecrets(t *testing.T, f *fixture) {
	admin := f.pg.Password()
	// A wrong password in the URL.
	url := f.pg.URLFor("gatehouse", "wrong-"+readerPassword)
	_, err := f.tryOpen(t, "gatehouse", Options{URL: url, Password: "wrong-" + readerPassword})
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	for _, s := range []string{readerPassword, "wrong-", admin} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a password", err)
		}
	}
	// A URL that does not parse, with the password in it.
	_, err = New(context.Background(), Options{URL: "postgres://u:" + readerPassword + "@127.0.0.1:99999999/x?sslmode=bogus"})
	if err == nil || strings.Contains(err.Error(), readerPassword) || strings.Contains(err.Error(), "reader-secret") {
		t.Errorf("bad URL: error %v (must exist, without the password)", err)
	}
	// Not a PostgreSQL URL.
	if _, err := New(context.Background(), Options{URL: "redis://u:" + readerPassword + "@127.0.0.1/0"}); err == nil || strings.Contains(err.Error(), "reader-secret") {
		t.Errorf("redis URL: error %v (must exist, without the password)", err)
	}
	// Both a password and a password file.
	if _, err := New(context.Background(), Options{URL: f.pg.URLFor("gatehouse", ""), Password: "x", PasswordFile: f.passwordFile}); err == nil {
		t.Error("password and password file: no error")
	}
	// The password from the URL works too, and the server being down then
	// gives lookup errors without it.
	o, err := f.tryOpen(t, "gatehouse", Options{URL: f.pg.URLFor("gatehouse", readerPassword), Password: "", PasswordFile: ""})
	if err != nil {
		t.Fatalf("password in the URL: %v", err)
	}
	if got, err := lookup(t, o, userstore.User, activeUser); err != nil || got != userstore.Active {
		t.Fatalf("Lookup = %v, %v", got, err)
	}

	withPassword := (&neturl.URL{Scheme: "postgres", User: neturl.UserPassword("u", readerPassword), Host: "h", Path: "/db", RawQuery: "sslmode=require"}).String()
	if got := RedactURL(withPassword); strings.Contains(got, "reader-secret") || got != "postgres://u:xxxxx@h/db?sslmode=require" {
		t.Errorf("RedactURL(%q) = %q", withPassword, got)
	}
	// Unescaped: not a URL, and the password could be anywhere in it.
	if got := RedactURL("postgres://u:" + readerPassword + "@h/db"); strings.Contains(got, "reader-secret") {
		t.Errorf("RedactURL = %q", got)
	}
	if got := RedactURL("postgresql://h/db?user=u&password=" + readerPassword); strings.Contains(got, "reader-secret") {
		t.Errorf("RedactURL = %q", got)
	}
	err = scrub(errors.Join(userstore.ErrUnavailable, errors.New("boom "+readerPassword)), readerPassword, "")
	if strings.Contains(err.Error(), readerPassword) || !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("scrub = %v: the password must go, ErrUnavailable stay", err)
	}
}

func testDeadline(t *testing.T, f *fixture) {
	// A query that takes a minute: the lookup must give up at its deadline
	// with ErrUnavailable, not wait for the database.
	slow := "SELECT is_active FROM meet_user, pg_sleep(60) WHERE id = $1"
	o := f.open(t, Options{UserQuery: slow, Timeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := o.Lookup(ctx, userstore.User, activeUser)
	elapsed := time.Since(start)
	if got != userstore.NotFound || !errors.Is(err, userstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow lookup = %v, %v; want NotFound, ErrUnavailable (deadline exceeded)", got, err)
	}
	if elapsed > 30*time.Second {
		t.Fatalf("slow lookup returned after %v: it waited for the query", elapsed)
	}
	t.Logf("caller deadline 300ms: returned after %v", elapsed)

	// Options.Timeout bounds a lookup whose context has no deadline.
	o = f.open(t, Options{UserQuery: slow, Timeout: 300 * time.Millisecond})
	start = time.Now()
	_, err = o.Lookup(context.Background(), userstore.User, activeUser)
	if !errors.Is(err, userstore.ErrUnavailable) || time.Since(start) > 30*time.Second {
		t.Fatalf("lookup without a deadline = %v after %v; want ErrUnavailable by Options.Timeout", err, time.Since(start))
	}
	// The timed-out connection was dropped, not returned to the pool busy:
	// another lookup on a fast query works.
	fast := f.open(t, Options{})
	if got, err := lookup(t, fast, userstore.User, activeUser); err != nil || got != userstore.Active {
		t.Fatalf("after a timeout: Lookup = %v, %v", got, err)
	}
}

func testPoolBounded(t *testing.T, f *fixture) {
	o := f.open(t, Options{MaxConns: 2, UserQuery: "SELECT is_active FROM meet_user, pg_sleep(0.05) WHERE id = $1"})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := o.Lookup(ctx, userstore.User, activeUser); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent lookup: %v", err)
	}
	total, _, maxConns := o.Stats()
	if maxConns != 2 || total > 2 {
		t.Errorf("pool: %d connections, max %d; want at most 2", total, maxConns)
	}
}

// notes collects Listen's callbacks.
type notes struct {
	changes chan string // "user:<id>" / "app:<id>"
	resets  chan struct{}
}

func newNotes() *notes {
	return &notes{changes: make(chan string, 100), resets: make(chan struct{}, 100)}
}

func (n *notes) onChange(kind userstore.Kind, id string) { n.changes <- kind.String() + ":" + id }
func (n *notes) onReset()                                { n.resets <- struct{}{} }

func (n *notes) waitReset(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-n.resets:
	case <-time.After(within):
		t.Fatalf("no reset within %v", within)
	}
}

func (n *notes) waitChange(t testing.TB, within time.Duration) string {
	t.Helper()
	select {
	case c := <-n.changes:
		return c
	case <-time.After(within):
		t.Fatalf("no change notified within %v", within)
		return ""
	}
}

func (f *fixture) listen(t testing.TB, o *Origin) *notes {
	t.Helper()
	n := newNotes()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Listen(ctx, n.onChange, n.onReset) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Listen returned %v, want context.Canceled", err)
		}
	})
	return n
}

func testNotifications(t *testing.T, f *fixture) {
	sql, err := TriggerSQL(TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.pg.Exec(t, sql)
	f.pg.Exec(t, sql) // it can be run again
	legacy, err := TriggerSQL(TriggerOptions{AppActiveColumn: "active"})
	if err != nil {
		t.Fatal(err)
	}
	f.pg.Exec(t, "SET search_path = old;\n"+legacy)

	o := f.open(t, Options{})
	n := f.listen(t, o)
	n.waitReset(t, 30*time.Second) // the first LISTEN purges too

	start := time.Now()
	f.pg.Exec(t, "UPDATE meet_user SET is_active = false WHERE id = '"+activeUser+"'")
	if got := n.waitChange(t, 10*time.Second); got != "user:"+activeUser {
		t.Fatalf("change = %q, want user:%s", got, activeUser)
	}
	t.Logf("deactivation notified %v after the UPDATE was sent (Exec includes a connection set-up)", time.Since(start))
	if got, err := lookup(t, o, userstore.User, activeUser); err != nil || got != userstore.Inactive {
		t.Fatalf("after deactivation: Lookup = %v, %v", got, err)
	}

	// An UPDATE that does not change the flag (Django saves every column)
	// notifies nothing; the next real change comes first.
	f.pg.Exec(t, "UPDATE meet_user SET is_active = false, email = 'x' WHERE id = '"+activeUser+"'")
	f.pg.Exec(t, "UPDATE meet_user SET email = 'y' WHERE id = '"+inactiveUser+"'")
	f.pg.Exec(t, "UPDATE meet_user SET is_active = true WHERE id = '"+activeUser+"'")
	if got := n.waitChange(t, 10*time.Second); got != "user:"+activeUser {
		t.Fatalf("change = %q, want user:%s (reactivation, nothing before it)", got, activeUser)
	}
	f.pg.Exec(t, "DELETE FROM meet_application WHERE client_id = 'app-inactive'")
	if got := n.waitChange(t, 10*time.Second); got != "app:app-inactive" {
		t.Fatalf("change = %q, want app:app-inactive", got)
	}
	// A rolled-back change notifies nothing.
	f.pg.Exec(t, "BEGIN; UPDATE meet_application SET is_active = false WHERE client_id = 'app-active'; ROLLBACK")
	// The legacy schema's trigger on "active".
	f.pg.Exec(t, "UPDATE old.meet_application SET active = false WHERE client_id = 'old-active'")
	if got := n.waitChange(t, 10*time.Second); got != "app:old-active" {
		t.Fatalf("change = %q, want app:old-active (and nothing for the rollback)", got)
	}
	// A payload gatehouse cannot read: purge everything.
	f.pg.Exec(t, "SELECT pg_notify('"+Channel+"', 'garbage')")
	n.waitReset(t, 10*time.Second)
	select {
	case c := <-n.changes:
		t.Fatalf("unexpected change %q", c)
	default:
	}
}

// testSilent freezes the server process that serves Listen's connection:
// no error, no reset, just silence. Listen's pings must notice, reconnect
// and purge; meanwhile quiet periods shorter than that must not break the
// connection.
func testSilent(t *testing.T, f *fixture) {
	o := f.open(t, Options{Listen: ListenOptions{PingInterval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond}})
	n := f.listen(t, o)
	n.waitReset(t, 30*time.Second)

	// Several quiet intervals (each a timed-out wait and a ping) leave the
	// connection working.
	time.Sleep(500 * time.Millisecond)
	f.pg.Exec(t, "SELECT pg_notify('"+Channel+"', 'user:"+inactiveUser+"')")
	if got := n.waitChange(t, 10*time.Second); got != "user:"+inactiveUser {
		t.Fatalf("change = %q, want user:%s", got, inactiveUser)
	}
	select {
	case <-n.resets:
		t.Fatal("quiet intervals caused a reconnection")
	default:
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, f.pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var pid int
	if err := admin.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE usename = 'gatehouse' AND application_name = 'gatehouse-listen'").Scan(&pid); err != nil {
		t.Fatalf("find Listen's server process: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze server process %d: %v", pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	n.waitReset(t, 30*time.Second)
}

func testRestart(t *testing.T, f *fixture) {
	sql, err := TriggerSQL(TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.pg.Exec(t, sql) // when run alone
	logs := &testkit.LogBuffer{}
	o := f.open(t, Options{Logger: testkit.NewLogger(logs), Listen: ListenOptions{MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}})
	n := f.listen(t, o)
	n.waitReset(t, 30*time.Second)

	f.pg.Restart()
	// Listen lost its connection, reconnected and purged.
	n.waitReset(t, 60*time.Second)
	if !strings.Contains(logs.String(), "reconnecting") {
		t.Errorf("the lost connection was not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), readerPassword) {
		t.Errorf("logs contain the password: %s", logs.String())
	}
	f.pg.Exec(t, "UPDATE meet_user SET is_active = false WHERE id = '"+inactiveUser+"' OR id = '"+activeUser+"'")
	if got := n.waitChange(t, 10*time.Second); got != "user:"+activeUser {
		t.Fatalf("after restart: change = %q, want user:%s", got, activeUser)
	}
	// The pool recovers too (its connections died with the server).
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := lookup(t, o, userstore.User, activeUser)
		if err == nil && got == userstore.Inactive {
			break
		}
		if err != nil && !errors.Is(err, userstore.ErrUnavailable) {
			t.Fatalf("after restart: Lookup error %v does not wrap ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: Lookup = %v, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParsePayload(t *testing.T) {
	for p, want := range map[string]string{
		"user:abc":     "user:abc",
		"app:x:y":      "app:x:y",
		"user:":        "",
		"group:x":      "",
		"garbage":      "",
		"":             "",
		"USER:abc":     "",
		"app:client-1": "app:client-1",
	} {
		kind, id, ok := ParsePayload(p)
		got := ""
		if ok {
			got = kind.String() + ":" + id
		}
		if got != want {
			t.Errorf("ParsePayload(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestTriggerSQL(t *testing.T) {
	sql, err := TriggerSQL(TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"AFTER UPDATE OF is_active ON meet_user",
		"AFTER DELETE ON meet_user",
		"AFTER UPDATE OF is_active ON meet_application",
		"AFTER DELETE ON meet_application",
		"pg_notify('gatehouse_invalidate', 'user:' || OLD.id::text)",
		"pg_notify('gatehouse_invalidate', 'app:' || OLD.client_id::text)",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("TriggerSQL lacks %q:\n%s", want, sql)
		}
	}
	legacy, err := TriggerSQL(TriggerOptions{AppActiveColumn: "active"})
	if err != nil || !strings.Contains(legacy, "AFTER UPDATE OF active ON meet_application") || !strings.Contains(legacy, "AFTER UPDATE OF is_active ON meet_user") {
		t.Errorf("legacy TriggerSQL = %v:\n%s", err, legacy)
	}
	for _, bad := range []string{"is_active; DROP TABLE x", "Active", "a b", `"x"`} {
		if _, err := TriggerSQL(TriggerOptions{AppActiveColumn: bad}); err == nil {
			t.Errorf("TriggerSQL accepted column %q", bad)
		}
	}
}

func userBySub(t *testing.T, s userstore.Subjects, sub string) (string, bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.UserBySub(ctx, sub)
}

func testSubjects(t *testing.T, f *fixture) {
	var logs testkit.LogBuffer
	o := f.open(t, Options{Logger: testkit.NewLogger(&logs)})
	for _, c := range []struct {
		sub, want string
	}{
		{"alice@idp", activeUser}, // the uuid as PostgreSQL spells it
		{"ALICE@IDP", ""},         // subjects compare exactly
		{"nobody", ""},
		{"", ""},
		{strings.Repeat("a", 256), ""}, // longer than Meet's column
		{"bad\xff", ""},
		{"nul\x00", ""},
		{"' OR true --", ""},
	} {
		id, found, err := userBySub(t, o, c.sub)
		if err != nil || id != c.want || found != (c.want != "") {
			t.Errorf("UserBySub(%.40q) = %q, %v, %v; want %q", c.sub, id, found, err, c.want)
		}
	}
	// An id of type text works as well; two rows find nobody, logged
	// without the sub, and nothing else changes.
	text := f.open(t, Options{SubQuery: "SELECT upper(id::text) FROM meet_user WHERE sub = $1", Logger: testkit.NewLogger(&logs)})
	if id, found, err := userBySub(t, text, "alice@idp"); err != nil || !found || id != strings.ToUpper(activeUser) {
		t.Errorf("text column: %q, %v, %v", id, found, err)
	}
	dup := f.open(t, Options{SubQuery: "SELECT k FROM dup WHERE k = $1", Logger: testkit.NewLogger(&logs)})
	if id, found, err := userBySub(t, dup, "twice"); err != nil || found || id != "" {
		t.Errorf("two rows: %q, %v, %v; want nobody, no error", id, found, err)
	}
	if out := logs.String(); !strings.Contains(out, "returned 2 rows") || strings.Contains(out, "twice") {
		t.Errorf("logs:\n%s", out)
	}
	if id, found, err := userBySub(t, o, "alice@idp"); err != nil || !found || id != activeUser {
		t.Errorf("after the ambiguous subject: %q, %v, %v", id, found, err)
	}
	// The sub query's shape and privileges are checked at New.
	for name, c := range map[string]struct {
		role string
		opts Options
		want string
	}{
		"boolean column": {"gatehouse", Options{SubQuery: "SELECT is_active FROM meet_user WHERE sub = $1"}, "want uuid, text or varchar"},
		"two columns":    {"gatehouse", Options{SubQuery: "SELECT id, sub FROM meet_user WHERE sub = $1"}, "returns 2 columns"},
		"no parameter":   {"gatehouse", Options{SubQuery: "SELECT id FROM meet_user LIMIT 1"}, "takes 0 parameters"},
		"no privilege":   {"gatehouse_nosub", Options{}, "sub query"},
	} {
		_, err := f.tryOpen(t, c.role, c.opts)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Which != "sub" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New error = %v, want a QueryError of the sub query saying %q", name, err, c.want)
		}
	}
	// Without subjects, a role granted only the old columns starts, and
	// subject lookups fail closed.
	nosub, err := f.tryOpen(t, "gatehouse_nosub", Options{NoSubjects: true})
	if err != nil {
		t.Fatalf("NoSubjects: %v", err)
	}
	if got, err := lookup(t, nosub, userstore.User, activeUser); err != nil || got != userstore.Active {
		t.Errorf("NoSubjects: Lookup = %v, %v", got, err)
	}
	if _, found, err := userBySub(t, nosub, "alice@idp"); found || !errors.Is(err, userstore.ErrUnavailable) {
		t.Errorf("NoSubjects: UserBySub = %v, %v; want ErrUnavailable", found, err)
	}
	// A slow database: the deadline, ErrUnavailable, and no sub in the error.
	slow := f.open(t, Options{SubQuery: "SELECT id FROM meet_user, pg_sleep(60) WHERE sub = $1", Timeout: 300 * time.Millisecond})
	_, found, err := slow.UserBySub(context.Background(), "alice@idp")
	if found || !errors.Is(err, userstore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "alice") {
		t.Errorf("slow sub query: %v, %v", found, err)
	}
}
