// Package redisstore is a userstore.Directory kept in Redis, shared by every
// gatehouse replica.
//
// # Schema
//
// The schema is stable and meant to be written by any Redis client:
//
//	<prefix>user:<id>         hash: active = "1" | "0", email = <optional>,
//	                          sub = <optional OIDC subject>
//	<prefix>app:<client_id>   hash: active = "1" | "0", email = <optional>
//	<prefix>sub:<sub>         string: the id of the user whose sub it is
//	<prefix>invalidate        pub/sub channel; a writer publishes "user:<id>"
//	                          or "app:<client_id>" after changing a record,
//	                          and "sub:<sub>" for a sub added or removed
//	<prefix>introspection:<sha256 hex>
//	                          string with a TTL: a cached introspection
//	                          verdict (IntrospectionCache)
//
// The default prefix is "gatehouse:", so a user is for example
//
//	HSET gatehouse:user:3f2504e0-4f89-11d3-9a0c-0305e82c3301 active 1 email ann@example.com
//	PUBLISH gatehouse:invalidate user:3f2504e0-4f89-11d3-9a0c-0305e82c3301
//
// Ids are used exactly as given: writers must store user ids in the form the
// decision core looks them up (canonical lower-case UUIDs when it is
// configured for UUIDs).
//
// A subject is found (UserBySub) only when the index and the user's hash
// agree: the index key names a user whose hash has that sub. A stale or
// dangling index entry, which a write interrupted half-way on a Cluster can
// leave, finds nobody; see Session.PutBatch.
//
// When a directory origin is the record (Meet's database, a gRPC directory
// service), Redis is its shared cache: OriginCache writes the origin's
// answers under the same keys, with a TTL and one more field, origin =
// "found" | "absent" (an absent record is cached as active "0"), and reads
// only entries that carry it. A lookup without an origin reads such an entry
// as it reads any record.
//
// # Lookups fail closed
//
// A missing key is NotFound. "1" is Active, "0" is Inactive. A record that
// exists but is malformed — a key of another type (WRONGTYPE), a hash
// without an "active" field, an "active" that is neither "1" nor "0" — is
// Inactive with an error wrapping userstore.ErrInvalidRecord: a corrupted
// record never grants access, and it is that record's problem, not an
// outage (the circuit does not count it; the cache denies it and logs it).
// A timeout, a cancelled context or an unreachable server is an error
// wrapping userstore.ErrUnavailable.
//
// # Writes
//
// Put, PutBatch, SetActive and Remove write first, then publish the
// invalidation message in a second round trip (never before: a replica that
// hears the message reads the record again). Each record's fields are
// written atomically, by a script that leaves a key of another type alone;
// see Session.PutBatch for batches and Redis Cluster, and Session.Wait for
// waiting until a replica has the change.
//
// # Deployments
//
// NewUniversalClient builds a client for a standalone Redis, Sentinel or
// Redis Cluster, with TLS and credentials (see ClientConfig); NewClient is
// the standalone URL-only form.
//
// Every operation is bounded by Options.Timeout and the caller's deadline.
// The client must honour context deadlines (go-redis's ContextTimeoutEnabled,
// which NewClient sets); otherwise a hung Redis holds a lookup for the
// client's read timeout rather than Options.Timeout. go-redis turns deadlines
// into socket deadlines but does not interrupt a blocked read when a context
// is merely cancelled, so against a hung Redis a cancelled lookup returns at
// Options.Timeout (with an error wrapping context.Canceled). userstore.Cache
// in front returns to a cancelled caller at once.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/logbudget"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Defaults for Options.
const (
	DefaultPrefix  = "gatehouse:"
	DefaultTimeout = 200 * time.Millisecond
)

// Options configure a Store. Zero values select the defaults.
type Options struct {
	// Prefix starts every key and the invalidation channel name (default
	// DefaultPrefix).
	Prefix string
	// Timeout bounds every Redis operation, on top of the caller's context
	// (default DefaultTimeout).
	Timeout time.Duration
	// NormalizeUserID, when set, is the decision core's normaliser of user
	// ids (canonical UUIDs): UserBySub finds nobody when the index names
	// an id lookups never ask for, since the decision core would look up
	// another record than the one that carries the sub.
	NormalizeUserID func(string) (string, bool)
	// Logger receives the warnings about malformed subject index entries
	// (default slog.Default()), within LogBudget (default: a budget of
	// logbudget.DefaultPerSecond lines).
	Logger    *slog.Logger
	LogBudget *logbudget.Budget
}

// Store reads and writes directory records in Redis. It is safe for
// concurrent use.
type Store struct {
	client  redis.UniversalClient
	timeout time.Duration
	// Precomputed so that building a key is a single concatenation.
	userPrefix, appPrefix string
	subPrefix             string
	introPrefix           string
	channel               string
	normalize             func(string) (string, bool)
	log                   *slog.Logger
	logs                  *logbudget.Budget
	// badSubs counts malformed subject index entries met by UserBySub.
	badSubs atomic.Uint64
	// topo reloads a Cluster's slot map after connection errors (nil for
	// other deployments); see cluster.go.
	topo *topology
}

// New returns a Store using client. The Store does not own the client:
// closing it is the caller's job.
func New(client redis.UniversalClient, opts Options) *Store {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s := &Store{
		client:      client,
		timeout:     timeout,
		userPrefix:  prefix + userstore.User.String() + ":",
		appPrefix:   prefix + userstore.App.String() + ":",
		subPrefix:   prefix + "sub:",
		introPrefix: prefix + "introspection:",
		channel:     prefix + "invalidate",
		topo:        newTopology(client),
		normalize:   opts.NormalizeUserID,
		log:         opts.Logger,
		logs:        opts.LogBudget,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.logs == nil {
		s.logs = logbudget.New(0)
	}
	return s
}

// Key returns the Redis key of a record.
func (s *Store) Key(kind userstore.Kind, id string) (string, error) {
	switch kind {
	case userstore.User:
		return s.userPrefix + id, nil
	case userstore.App:
		return s.appPrefix + id, nil
	default:
		return "", fmt.Errorf("redisstore: unknown kind %d", kind)
	}
}

// InvalidationChannel returns the pub/sub channel Put and Delete publish on.
func (s *Store) InvalidationChannel() string { return s.channel }

// InvalidationMessage returns the message published when a record changes:
// "<kind>:<id>".
func InvalidationMessage(kind userstore.Kind, id string) string {
	return kind.String() + ":" + id
}

// unavailable wraps a failed operation's error. When the operation's context
// is done its error is wrapped too, so callers can tell a deadline from an
// outage; go-redis reports an expired deadline as a network timeout.
func unavailable(ctx context.Context, op string, kind userstore.Kind, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	return fmt.Errorf("redisstore: %s %s: %w: %w", op, kind, userstore.ErrUnavailable, err)
}

// Lookup implements userstore.Directory with one HGETALL: a missing key
// (an empty answer) is told from a hash without an "active" field in the
// same round trip. Records hold a few short fields.
func (s *Store) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	key, err := s.Key(kind, id)
	if err != nil {
		return userstore.NotFound, err
	}
	if id == "" {
		return userstore.NotFound, nil // Put refuses empty ids: nothing can exist
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.client.HGetAll(ctx, key).Result()
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return userstore.Inactive, invalidRecord(kind, "key holds another type than a hash")
	case err != nil:
		s.failed(err)
		return userstore.NotFound, unavailable(ctx, "lookup", kind, err)
	case len(m) == 0:
		return userstore.NotFound, nil
	}
	v, ok := m["active"]
	switch {
	case !ok:
		return userstore.Inactive, invalidRecord(kind, "hash without an \"active\" field")
	case v == "1":
		return userstore.Active, nil
	case v == "0":
		return userstore.Inactive, nil
	default:
		// A value no writer produces: fail closed.
		return userstore.Inactive, invalidRecord(kind, "\"active\" is neither \"1\" nor \"0\"")
	}
}

// invalidRecord is the error of a malformed record. It names what is wrong,
// never the value found (a record may hold anything).
func invalidRecord(kind userstore.Kind, what string) error {
	return fmt.Errorf("redisstore: %s record: %w: %s", kind, userstore.ErrInvalidRecord, what)
}

// Get returns the stored record, with Active true only for "1", and false if
// the key does not exist. A key of another type is an error wrapping
// userstore.ErrInvalidRecord.
func (s *Store) Get(ctx context.Context, kind userstore.Kind, id string) (userstore.Record, bool, error) {
	key, err := s.Key(kind, id)
	if err != nil {
		return userstore.Record{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.client.HGetAll(ctx, key).Result()
	if redis.HasErrorPrefix(err, "WRONGTYPE") {
		return userstore.Record{}, false, invalidRecord(kind, "key holds another type than a hash")
	}
	if err != nil {
		s.failed(err)
		return userstore.Record{}, false, unavailable(ctx, "get", kind, err)
	}
	if len(m) == 0 {
		return userstore.Record{}, false, nil
	}
	r := userstore.Record{ID: id, Active: m["active"] == "1", Email: m["email"]}
	if kind == userstore.User {
		r.Sub = m["sub"]
	}
	return r, true, nil
}

// Writes (Put, PutBatch, SetActive, Delete, Remove, Session) are in
// write.go.

// Ping checks that Redis answers, within Timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w: %w", userstore.ErrUnavailable, err)
	}
	return nil
}

// NewClient builds a client from a URL:
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]
//	rediss://...   (TLS)
//
// Options are go-redis's (dial_timeout, read_timeout, pool_size, ...).
// Context deadlines are always honoured (ContextTimeoutEnabled), so
// Options.Timeout bounds lookups even when Redis hangs. Errors never repeat
// the URL, which may hold a password.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: invalid Redis URL: %w", redactURLError(rawURL, err))
	}
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

// redactURLError keeps the URL's secrets out of an error. net/url's errors
// print the whole URL, and their inner errors can quote a piece of it (a
// password containing "/" makes an "invalid port" that quotes its start), so
// when the URL does not even parse and carries user info, no detail is kept.
// go-redis's own errors name the scheme, path or a query option, but mask
// the password anyway in case that changes.
func redactURLError(rawURL string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if strings.Contains(rawURL, "@") {
			return errors.New("malformed URL (details withheld: it holds credentials)")
		}
		return uerr.Err
	}
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(err.Error(), pw) {
			return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
		}
	}
	return err
}
