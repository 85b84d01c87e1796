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
// # Writes
//
// Put, PutBatch, SetActive and Remove write first, then publish the
// invalidation message in a second round trip (never before: a replica that
// hears the message reads the record again). Each record's fields are
// written atomically; see PutBatch for batches and Redis Cluster.
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

// Put writes a record, then publishes its invalidation message. An empty
// Email removes a stored email.
//
// The record's fields are written in one MULTI/EXEC on its key, so a reader
// sees either the old record or the new one, never a mix. The message is
// published after the write has succeeded, never before: a replica that
// drops its cached entry on the message and looks the record up again reads
// the new value. (Redis Cluster refuses a transaction that spans slots, and
// PUBLISH has none, so write and publish are two round trips in every mode.)
// If the publish fails, the record is written and the error says so;
// replicas then see the change when their cached entry expires.
func (s *Store) Put(ctx context.Context, kind userstore.Kind, r userstore.Record) error {
	return s.PutBatch(ctx, kind, []userstore.Record{r})
}

// PutBatch writes records as Put does, then publishes one invalidation
// message per record in one pipeline. Against a standalone or
// Sentinel-managed Redis the batch is one MULTI/EXEC, so it is atomic:
// every record is written or none is (Redis does not roll back, though: a
// record whose key holds another type fails alone, and the error says so).
// Redis Cluster refuses a transaction
// whose keys hash to different slots, so there each record is written by
// its own one-key script (pipelined): each record is still written whole,
// all its fields or none, but a failure can leave part of the batch
// written. Records must have non-empty ids.
func (s *Store) PutBatch(ctx context.Context, kind userstore.Kind, recs []userstore.Record) error {
	if len(recs) == 0 {
		return nil
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		if r.ID == "" {
			return fmt.Errorf("redisstore: put %s: empty id", kind)
		}
		key, err := s.Key(kind, r.ID)
		if err != nil {
			return err
		}
		keys[i] = key
	}
	ctx, cancel := context.WithTimeout(ctx, s.batchTimeout(len(recs)))
	defer cancel()
	write := s.client.TxPipelined
	if _, cluster := s.client.(*redis.ClusterClient); cluster {
		write = s.client.Pipelined
		_, err := write(ctx, func(p redis.Pipeliner) error {
			for i, r := range recs {
				putScript.Eval(ctx, p, []string{keys[i]}, activeValue(r.Active), r.Email)
			}
			return nil
		})
		if err != nil {
			return unavailable(ctx, "put", kind, err)
		}
		return s.publishIDs(ctx, kind, recs)
	}
	_, err := write(ctx, func(p redis.Pipeliner) error {
		for i, r := range recs {
			active := "0"
			if r.Active {
				active = "1"
			}
			if r.Email != "" {
				p.HSet(ctx, keys[i], "active", active, "email", r.Email)
			} else {
				p.HSet(ctx, keys[i], "active", active)
				p.HDel(ctx, keys[i], "email")
			}
		}
		return nil
	})
	if err != nil {
		return unavailable(ctx, "put", kind, err)
	}
	return s.publishIDs(ctx, kind, recs)
}

// putScript writes one record atomically; a one-key script runs on the
// key's node in a Cluster.
var putScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'active', ARGV[1])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'email')
else
  redis.call('HSET', KEYS[1], 'email', ARGV[2])
end
return 1`)

func activeValue(active bool) string {
	if active {
		return "1"
	}
	return "0"
}

func (s *Store) publishIDs(ctx context.Context, kind userstore.Kind, recs []userstore.Record) error {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return s.publish(ctx, kind, ids)
}

// batchTimeout scales Timeout with the number of records of a batch: a
// thousand writes take longer than one lookup.
func (s *Store) batchTimeout(n int) time.Duration {
	return s.timeout + time.Duration(n)*50*time.Microsecond
}

// publish sends one invalidation message per id, pipelined.
func (s *Store) publish(ctx context.Context, kind userstore.Kind, ids []string) error {
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Publish(ctx, s.channel, InvalidationMessage(kind, id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: %s written, but publishing the invalidation failed (replicas see the change when their cache expires): %w",
			kind, unavailable(ctx, "publish", kind, err))
	}
	return nil
}

// setActiveScript changes the active field of an existing record only, so
// that enabling a mistyped id does not create a record.
var setActiveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'active', ARGV[1])
  return 1
end
return 0`)

// SetActive sets the active field of an existing record and publishes its
// invalidation. It reports false, and writes nothing, when the record does
// not exist.
func (s *Store) SetActive(ctx context.Context, kind userstore.Kind, id string, active bool) (bool, error) {
	key, err := s.Key(kind, id)
	if err != nil {
		return false, err
	}
	v := "0"
	if active {
		v = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := setActiveScript.Run(ctx, s.client, []string{key}, v).Int()
	if err != nil {
		return false, unavailable(ctx, "set active", kind, err)
	}
	if n == 0 {
		return false, nil
	}
	return true, s.publish(ctx, kind, []string{id})
}

// Delete removes a record (absent records are not an error), then publishes
// its invalidation message.
func (s *Store) Delete(ctx context.Context, kind userstore.Kind, id string) error {
	_, err := s.Remove(ctx, kind, id)
	return err
}

// Remove is Delete that also reports whether the record existed. The
// invalidation is published either way.
func (s *Store) Remove(ctx context.Context, kind userstore.Kind, id string) (bool, error) {
	key, err := s.Key(kind, id)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.client.Del(ctx, key).Result()
	if err != nil {
		return false, unavailable(ctx, "delete", kind, err)
	}
	return n > 0, s.publish(ctx, kind, []string{id})
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
