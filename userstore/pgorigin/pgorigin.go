// Package pgorigin reads gatehouse's directory straight from Meet's
// PostgreSQL database: the origin behind a postgres:// or postgresql://
// directory URL.
//
// Each lookup runs one prepared query, with the record's id as its only
// parameter, returning one boolean column: by default
//
//	SELECT is_active FROM meet_user WHERE id = $1
//	SELECT is_active FROM meet_application WHERE client_id = $1
//
// Both queries are settings; New checks against the database that each takes
// exactly one parameter and returns exactly one boolean column, and refuses
// to start otherwise. A third query finds a user by OIDC subject
// (userstore.Subjects, for tokens checked by introspection):
//
//	SELECT id FROM meet_user WHERE sub = $1
//
// one parameter, one column of type uuid or text/varchar, returned as its
// canonical text (a UUID in lower case). The least privilege the default
// queries need is
//
//	CREATE ROLE gatehouse LOGIN PASSWORD '…';
//	GRANT SELECT (id, is_active, sub) ON meet_user TO gatehouse;
//	GRANT SELECT (client_id, is_active) ON meet_application TO gatehouse;
//
// Answers, failing closed:
//   - no row: NotFound;
//   - one row, true: Active; false: Inactive;
//   - a NULL flag, or more than one row (a custom query on a key that is not
//     unique): Inactive with an error wrapping userstore.ErrInvalidRecord —
//     the record's problem, not the database's;
//   - an id the database cannot even read as the key's type (not a UUID for
//     meet_user.id, invalid UTF-8; SQLSTATE class 22): NotFound, since no
//     such record can exist, and an attacker's garbage ids must not count as
//     database failures that open a circuit breaker for everyone;
//   - anything else (no connection, the deadline passed, a missing table):
//     an error wrapping userstore.ErrUnavailable.
//
// A subject lookup answers the same way, except that what is the record's
// problem (more than one row, a NULL id) finds nobody (found=false, no
// error), logged within a log budget: that subject alone is refused.
//
// Revocation: TriggerSQL returns the trigger that makes PostgreSQL notify
// gatehouse when a record is deactivated or deleted, and Listen follows those
// notifications.
package pgorigin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Defaults for Options.
const (
	// DefaultUserQuery reads a user of Meet's schema.
	DefaultUserQuery = "SELECT is_active FROM meet_user WHERE id = $1"
	// DefaultAppQuery reads an application of Meet's schema.
	DefaultAppQuery = "SELECT is_active FROM meet_application WHERE client_id = $1"
	// LegacyAppQuery reads an application of Meet releases before March
	// 2026, whose flag is named "active".
	LegacyAppQuery = "SELECT active FROM meet_application WHERE client_id = $1"
	// DefaultSubQuery finds a user of Meet's schema by OIDC subject
	// (meet_user.sub: varchar(255), unique, nullable).
	DefaultSubQuery = "SELECT id FROM meet_user WHERE sub = $1"

	DefaultMaxConns       = 4
	DefaultTimeout        = time.Second
	DefaultConnectTimeout = 5 * time.Second

	// MaxIDLength bounds the ids sent to the database: longer ones are
	// NotFound without a query (Meet's keys are a UUID and a 100-character
	// client id).
	MaxIDLength = 1024
)

// Names of the prepared statements on every pooled connection.
const (
	userStatement = "gatehouse_user"
	appStatement  = "gatehouse_app"
	subStatement  = "gatehouse_sub"
	// customDataKey holds a connection's *statements in pgconn's CustomData.
	customDataKey = "gatehouse.pgorigin"
)

// Options configure an Origin. Zero values select the defaults.
type Options struct {
	// URL is a postgres:// or postgresql:// URL in libpq's format (host,
	// port, database, user, and parameters such as sslmode,
	// sslrootcert, connect_timeout).
	URL string
	// Password, when set, replaces the URL's password. PasswordFile names
	// a file to read it from instead (its trailing newline is dropped);
	// setting both is an error.
	Password     string
	PasswordFile string
	// UserQuery and AppQuery read a user and an application (defaults
	// DefaultUserQuery, DefaultAppQuery): one $1 parameter, one boolean
	// column.
	UserQuery string
	AppQuery  string
	// SubQuery finds a user by OIDC subject (default DefaultSubQuery): one
	// $1 parameter, one column of type uuid, text or varchar, the user id.
	SubQuery string
	// NoSubjects leaves the sub query out (not prepared, not checked:
	// the role then needs no SELECT on the sub column), for deployments
	// that do not check tokens by introspection. UserBySub then fails
	// with ErrUnavailable.
	NoSubjects bool
	// MaxConns bounds the pool (default DefaultMaxConns). Lookups beyond
	// it wait for a connection, within their deadline.
	MaxConns int32
	// Timeout bounds every lookup, on top of the caller's context (default
	// DefaultTimeout).
	Timeout time.Duration
	// ConnectTimeout bounds each connection attempt when the URL sets no
	// connect_timeout (default DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// Listen tunes Listen's reconnections.
	Listen ListenOptions
	// Logger receives the origin's logs (default slog.Default()).
	Logger *slog.Logger
	// LogBudget caps the warnings about subjects the database answers
	// ambiguously, which come once per request (default: a budget of
	// logbudget.DefaultPerSecond lines).
	LogBudget *logbudget.Budget
}

// statements are the prepared statements of one connection.
type statements struct {
	user, app, sub *pgconn.StatementDescription
}

// Origin is a userstore.Directory backed by PostgreSQL. It is safe for
// concurrent use.
type Origin struct {
	pool     *pgxpool.Pool
	connCfg  *pgx.ConnConfig // for Listen's dedicated connection
	password string          // scrubbed from every error
	timeout  time.Duration
	listen   ListenOptions
	log      *slog.Logger
	logs     *logbudget.Budget
	redacted string // the URL without its password, for logs
}

var (
	_ userstore.Directory = (*Origin)(nil)
	_ userstore.Subjects  = (*Origin)(nil)
)

// New connects to the database, checks the three queries against it and
// returns an Origin with a bounded pool. It fails when the URL is invalid,
// the database cannot be reached within ctx, or a query has the wrong shape.
// Its errors never contain the password.
func New(ctx context.Context, opts Options) (*Origin, error) {
	password, err := readPassword(opts)
	if err != nil {
		return nil, err
	}
	redacted := RedactURL(opts.URL)
	scheme, _, _ := strings.Cut(opts.URL, "://")
	if scheme != "postgres" && scheme != "postgresql" {
		return nil, fmt.Errorf("pgorigin: directory URL %s: want a postgres:// or postgresql:// URL", redacted)
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, scrub(fmt.Errorf("pgorigin: directory URL %s: %w", redacted, err), password, opts.URL)
	}
	if password == "" {
		password = cfg.ConnConfig.Password
	} else {
		cfg.ConnConfig.Password = password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = orDefault(opts.ConnectTimeout, DefaultConnectTimeout)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "gatehouse"
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.MinConns = 1 // one warm connection: the first lookup after idle pays no handshake

	userQuery := orDefault(opts.UserQuery, DefaultUserQuery)
	appQuery := orDefault(opts.AppQuery, DefaultAppQuery)
	subQuery := orDefault(opts.SubQuery, DefaultSubQuery)
	if opts.NoSubjects {
		subQuery = ""
	}
	// Every new connection prepares the statements and checks their shape
	// again: a schema changed under a running gatehouse makes connections
	// fail (lookups unavailable) instead of answering from another column.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		st, err := prepare(ctx, c.PgConn(), userQuery, appQuery, subQuery)
		if err != nil {
			return err
		}
		c.PgConn().CustomData()[customDataKey] = st
		return nil
	}

	listenCfg := cfg.ConnConfig.Copy()
	// Told apart in pg_stat_activity: the pool's connections idle between
	// lookups, this one idles by design.
	listenCfg.RuntimeParams["application_name"] += "-listen"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, scrub(fmt.Errorf("pgorigin: %s: %w", redacted, err), password, opts.URL)
	}
	o := &Origin{
		pool:     pool,
		connCfg:  listenCfg,
		password: password,
		timeout:  orDefault(opts.Timeout, DefaultTimeout),
		listen:   opts.Listen.withDefaults(),
		log:      opts.Logger,
		logs:     opts.LogBudget,
		redacted: redacted,
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.logs == nil {
		o.logs = logbudget.New(0)
	}
	// Connect now: the queries are checked against the database at start,
	// and a wrong URL or password is a start-up error, not a stream of
	// failed lookups.
	c, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		var shape *QueryError
		if errors.As(err, &shape) {
			return nil, shape
		}
		return nil, o.scrub(fmt.Errorf("pgorigin: connect to %s: %w", redacted, err))
	}
	err = tryStatements(ctx, c.Conn().PgConn())
	c.Release()
	if err != nil {
		pool.Close()
		return nil, o.scrub(err)
	}
	return o, nil
}

// tryStatements runs the lookup statements once, with a NULL id (which
// matches nothing), in a read-only transaction: PostgreSQL checks column
// privileges only when a statement runs, not when it is prepared, and a
// statement that writes has no business being a lookup.
func tryStatements(ctx context.Context, c *pgconn.PgConn) error {
	st, _ := c.CustomData()[customDataKey].(*statements)
	if st == nil {
		return errors.New("pgorigin: connection without prepared statements")
	}
	if err := c.Exec(ctx, "BEGIN READ ONLY").Close(); err != nil {
		return fmt.Errorf("pgorigin: begin a read-only transaction: %w", err)
	}
	defer func() { _ = c.Exec(ctx, "ROLLBACK").Close() }()
	for _, q := range []struct {
		which  string
		sd     *pgconn.StatementDescription
		result []int16
	}{{"user", st.user, binaryResult}, {"app", st.app, binaryResult}, {"sub", st.sub, textResult}} {
		if q.sd == nil {
			continue // NoSubjects
		}
		if _, err := c.ExecStatement(ctx, q.sd, [][]byte{nil}, nil, q.result).Close(); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				return &QueryError{Which: q.which, msg: "refused by the database in a read-only trial run", err: err}
			}
			return fmt.Errorf("pgorigin: try the %s query: %w", q.which, err)
		}
	}
	return nil
}

func readPassword(opts Options) (string, error) {
	switch {
	case opts.PasswordFile != "" && opts.Password != "":
		return "", errors.New("pgorigin: set the password or the password file, not both")
	case opts.PasswordFile != "":
		b, err := os.ReadFile(opts.PasswordFile)
		if err != nil {
			// The path, not the content: an *os.PathError names only the file.
			return "", fmt.Errorf("pgorigin: read the password file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("pgorigin: the password file %s is empty", opts.PasswordFile)
		}
		return p, nil
	}
	return opts.Password, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// QueryError reports a lookup query of the wrong shape, or one the database
// refuses (a missing table or column, a syntax error, no privilege).
type QueryError struct {
	Which string // "user", "app" or "sub"
	msg   string
	err   error
}

func (e *QueryError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("pgorigin: %s query: %s: %v", e.Which, e.msg, e.err)
	}
	return fmt.Sprintf("pgorigin: %s query: %s", e.Which, e.msg)
}

func (e *QueryError) Unwrap() error { return e.err }

// prepare prepares the lookup statements on c and checks their shape.
func prepare(ctx context.Context, c *pgconn.PgConn, userQuery, appQuery, subQuery string) (*statements, error) {
	user, err := prepareOne(ctx, c, "user", userStatement, userQuery, boolColumn)
	if err != nil {
		return nil, err
	}
	app, err := prepareOne(ctx, c, "app", appStatement, appQuery, boolColumn)
	if err != nil {
		return nil, err
	}
	st := &statements{user: user, app: app}
	if subQuery != "" {
		if st.sub, err = prepareOne(ctx, c, "sub", subStatement, subQuery, idColumn); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// columnKind is what a lookup query must return: its one column's types.
type columnKind struct {
	want  string
	types []uint32
}

var (
	boolColumn = columnKind{"boolean", []uint32{pgtype.BoolOID}}
	// The sub query returns an id: Meet's is a uuid; a custom schema's may
	// be text.
	idColumn = columnKind{"uuid, text or varchar", []uint32{pgtype.UUIDOID, pgtype.TextOID, pgtype.VarcharOID}}
)

func prepareOne(ctx context.Context, c *pgconn.PgConn, which, name, query string, col columnKind) (*pgconn.StatementDescription, error) {
	sd, err := c.Prepare(ctx, name, query, nil)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			// The database answered: the query is wrong for this database.
			return nil, &QueryError{Which: which, msg: "refused by the database", err: err}
		}
		return nil, fmt.Errorf("pgorigin: prepare the %s query: %w", which, err)
	}
	if n := len(sd.ParamOIDs); n != 1 {
		return nil, &QueryError{Which: which, msg: fmt.Sprintf("takes %d parameters, want exactly one ($1, the id)", n)}
	}
	if n := len(sd.Fields); n != 1 {
		return nil, &QueryError{Which: which, msg: fmt.Sprintf("returns %d columns, want exactly one %s column", n, col.want)}
	}
	if oid := sd.Fields[0].DataTypeOID; !slices.Contains(col.types, oid) {
		return nil, &QueryError{Which: which, msg: fmt.Sprintf("column %q is of type %s, want %s", sd.Fields[0].Name, typeName(oid), col.want)}
	}
	return sd, nil
}

func typeName(oid uint32) string {
	if t, ok := pgtype.NewMap().TypeForOID(oid); ok {
		return t.Name
	}
	return fmt.Sprintf("OID %d", oid)
}

// binaryResult asks for the boolean column in binary: one byte, 0 or 1.
var binaryResult = []int16{pgtype.BinaryFormatCode}

// textResult asks for the id column as text: PostgreSQL's canonical
// spelling (a UUID in lower case), as Meet's API writes ids.
var textResult = []int16{pgtype.TextFormatCode}

// Lookup implements userstore.Directory.
func (o *Origin) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	if kind != userstore.User && kind != userstore.App {
		return userstore.NotFound, fmt.Errorf("pgorigin: unknown kind %d", kind)
	}
	if id == "" || len(id) > MaxIDLength {
		return userstore.NotFound, nil // no key of Meet's schema can match
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c, err := o.pool.Acquire(ctx)
	if err != nil {
		return userstore.NotFound, o.unavailable(ctx, kind, "acquire a connection", err)
	}
	defer c.Release()
	pc := c.Conn().PgConn()
	st, _ := pc.CustomData()[customDataKey].(*statements)
	if st == nil {
		// Every pooled connection went through AfterConnect.
		return userstore.NotFound, fmt.Errorf("pgorigin: %s lookup: connection without prepared statements: %w", kind, userstore.ErrUnavailable)
	}
	sd := st.user
	if kind == userstore.App {
		sd = st.app
	}
	// The id goes as text: PostgreSQL parses it with its own rules for the
	// key's type (a UUID in any spelling it accepts), as Meet's own queries
	// would.
	rr := pc.ExecStatement(ctx, sd, [][]byte{[]byte(id)}, nil, binaryResult)
	rows, active, null := 0, false, false
	for rr.NextRow() {
		rows++
		v := rr.Values()[0]
		null = v == nil
		active = len(v) == 1 && v[0] == 1
	}
	if _, err := rr.Close(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
			// Data exception: the id cannot be a value of the key's type.
			return userstore.NotFound, nil
		}
		return userstore.NotFound, o.unavailable(ctx, kind, "lookup", err)
	}
	switch {
	case rows == 0:
		return userstore.NotFound, nil
	case rows > 1:
		return userstore.Inactive, fmt.Errorf("pgorigin: %s record: %w: the query returned %d rows", kind, userstore.ErrInvalidRecord, rows)
	case null:
		return userstore.Inactive, fmt.Errorf("pgorigin: %s record: %w: the active flag is NULL", kind, userstore.ErrInvalidRecord)
	case active:
		return userstore.Active, nil
	default:
		return userstore.Inactive, nil
	}
}

// UserBySub implements userstore.Subjects with the sub query: the one row's
// id, as PostgreSQL spells it. No row, a sub CheckSub refuses, or one the
// database cannot compare (SQLSTATE class 22) finds nobody; more than one
// row or a NULL id finds nobody too, logged within the budget, as that
// subject's problem. Errors (no connection, the deadline) wrap
// userstore.ErrUnavailable and never quote the sub.
func (o *Origin) UserBySub(ctx context.Context, sub string) (string, bool, error) {
	if userstore.CheckSub(sub) != nil {
		return "", false, nil // Meet's column cannot hold it
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c, err := o.pool.Acquire(ctx)
	if err != nil {
		return "", false, o.unavailable(ctx, userstore.User, "acquire a connection for a subject lookup", err)
	}
	defer c.Release()
	pc := c.Conn().PgConn()
	st, _ := pc.CustomData()[customDataKey].(*statements)
	switch {
	case st == nil:
		return "", false, fmt.Errorf("pgorigin: subject lookup: connection without prepared statements: %w", userstore.ErrUnavailable)
	case st.sub == nil:
		return "", false, fmt.Errorf("pgorigin: subject lookup: %w: the origin was opened without the sub query (NoSubjects)", userstore.ErrUnavailable)
	}
	rr := pc.ExecStatement(ctx, st.sub, [][]byte{[]byte(sub)}, nil, textResult)
	rows, id, null := 0, "", false
	for rr.NextRow() {
		rows++
		v := rr.Values()[0]
		null = v == nil
		id = string(v)
	}
	if _, err := rr.Close(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
			return "", false, nil
		}
		return "", false, o.unavailable(ctx, userstore.User, "subject lookup", err)
	}
	switch {
	case rows == 0:
		return "", false, nil
	case rows > 1:
		o.badSubject(ctx, fmt.Sprintf("the sub query returned %d rows", rows))
		return "", false, nil
	case null || id == "":
		o.badSubject(ctx, "the sub query returned a NULL or empty id")
		return "", false, nil
	}
	return id, true, nil
}

// badSubject logs a subject the database answers ambiguously, without the
// sub (it comes from a token's introspection answer).
func (o *Origin) badSubject(ctx context.Context, what string) {
	if o.logs.Enabled(ctx, o.log, slog.LevelWarn) {
		o.log.LogAttrs(ctx, slog.LevelWarn, "ambiguous subject in the directory origin; that subject finds no user",
			slog.String("problem", what))
	}
}

// unavailable wraps a failed lookup's error, with the context's error when
// the deadline passed or the caller gave up (pgconn reports those as its own
// timeout errors), and scrubs the password.
func (o *Origin) unavailable(ctx context.Context, kind userstore.Kind, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	return o.scrub(fmt.Errorf("pgorigin: %s %s: %w: %w", op, kind, userstore.ErrUnavailable, err))
}

func (o *Origin) scrub(err error) error { return scrub(err, o.password, "") }

// Close closes the pool's connections. Lookups after Close fail with
// ErrUnavailable.
func (o *Origin) Close() { o.pool.Close() }

// Stats reports the pool's size, for metrics and tests.
func (o *Origin) Stats() (total, idle, max int32) {
	s := o.pool.Stat()
	return s.TotalConns(), s.IdleConns(), s.MaxConns()
}

// RedactURL returns the URL without its password (in the user information
// or a password= parameter), for logs and errors. An URL that does not parse
// is returned as a placeholder: it may hold a password anywhere.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// scrubbedError is an error whose message had a secret replaced. It unwraps
// only to the sentinels the callers test for (never to the original error,
// whose message holds the secret).
type scrubbedError struct {
	msg       string
	sentinels []error
}

func (e *scrubbedError) Error() string   { return e.msg }
func (e *scrubbedError) Unwrap() []error { return e.sentinels }

// scrub returns err, or a copy of its message with every spelling of the
// password (and the raw URL) replaced when it contains one. Errors of pgx
// redact passwords themselves; this is the second belt.
func scrub(err error, password, rawURL string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	secrets := []string{rawURL}
	if password != "" {
		secrets = append(secrets, password, url.QueryEscape(password), url.PathEscape(password),
			url.UserPassword("x", password).String()[2:])
	}
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return err
	}
	var sentinels []error
	for _, s := range []error{userstore.ErrUnavailable, userstore.ErrInvalidRecord, context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, s) {
			sentinels = append(sentinels, s)
		}
	}
	var qe *QueryError
	if errors.As(err, &qe) {
		sentinels = append(sentinels, &QueryError{Which: qe.Which, msg: qe.msg})
	}
	return &scrubbedError{msg: msg, sentinels: sentinels}
}
