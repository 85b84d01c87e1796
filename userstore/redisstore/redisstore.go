// Package redisstore is a userstore.Directory kept in Redis, shared by every
// gatehouse replica.
//
// # Schema
//
// The schema is stable and meant to be written by any Redis client:
//
//	<prefix>user:<id>         hash: active = "1" | "0", email = <optional>
//	<prefix>app:<client_id>   hash: active = "1" | "0", email = <optional>
//	<prefix>invalidate        pub/sub channel; a writer publishes "user:<id>"
//	                          or "app:<client_id>" after changing a record
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
// # Lookups fail closed
//
// A missing key, or a hash without an "active" field, is NotFound. "1" is
// Active, "0" is Inactive, and any other value is treated as Inactive: a
// corrupted record must never grant access. A key of the wrong type, a
// timeout, a cancelled context or an unreachable server is an error wrapping
// userstore.ErrUnavailable.
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
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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
}

// Store reads and writes directory records in Redis. It is safe for
// concurrent use.
type Store struct {
	client  redis.UniversalClient
	timeout time.Duration
	// Precomputed so that building a key is a single concatenation.
	userPrefix, appPrefix string
	channel               string
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
	return &Store{
		client:     client,
		timeout:    timeout,
		userPrefix: prefix + userstore.User.String() + ":",
		appPrefix:  prefix + userstore.App.String() + ":",
		channel:    prefix + "invalidate",
	}
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

// Lookup implements userstore.Directory with one HGET of the record's
// "active" field.
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
	v, err := s.client.HGet(ctx, key, "active").Result()
	switch {
	case errors.Is(err, redis.Nil):
		return userstore.NotFound, nil
	case err != nil:
		return userstore.NotFound, unavailable(ctx, "lookup", kind, err)
	case v == "1":
		return userstore.Active, nil
	default:
		// "0", or a value no writer should produce: fail closed.
		return userstore.Inactive, nil
	}
}

// Get returns the stored record, with Active true only for "1", and false if
// the key does not exist.
func (s *Store) Get(ctx context.Context, kind userstore.Kind, id string) (userstore.Record, bool, error) {
	key, err := s.Key(kind, id)
	if err != nil {
		return userstore.Record{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.client.HGetAll(ctx, key).Result()
	if err != nil {
		return userstore.Record{}, false, unavailable(ctx, "get", kind, err)
	}
	if len(m) == 0 {
		return userstore.Record{}, false, nil
	}
	return userstore.Record{ID: id, Active: m["active"] == "1", Email: m["email"]}, true, nil
}

// Put writes a record and publishes its invalidation message, atomically
// (MULTI/EXEC). An empty Email removes a stored email.
func (s *Store) Put(ctx context.Context, kind userstore.Kind, r userstore.Record) error {
	key, err := s.Key(kind, r.ID)
	if err != nil {
		return err
	}
	if r.ID == "" {
		return fmt.Errorf("redisstore: put %s: empty id", kind)
	}
	active := "0"
	if r.Active {
		active = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if r.Email != "" {
			p.HSet(ctx, key, "active", active, "email", r.Email)
		} else {
			p.HSet(ctx, key, "active", active)
			p.HDel(ctx, key, "email")
		}
		p.Publish(ctx, s.channel, InvalidationMessage(kind, r.ID))
		return nil
	})
	if err != nil {
		return unavailable(ctx, "put", kind, err)
	}
	return nil
}

// Delete removes a record (absent records are not an error) and publishes its
// invalidation message, atomically.
func (s *Store) Delete(ctx context.Context, kind userstore.Kind, id string) error {
	key, err := s.Key(kind, id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.Publish(ctx, s.channel, InvalidationMessage(kind, id))
		return nil
	})
	if err != nil {
		return unavailable(ctx, "delete", kind, err)
	}
	return nil
}

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
