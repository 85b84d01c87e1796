package redisstore

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

var _ userstore.Subjects = (*Store)(nil)

// SubKey returns the Redis key of a subject's index entry.
func (s *Store) SubKey(sub string) string { return s.subPrefix + sub }

// SubInvalidationMessage returns the message published when a user's sub is
// added, changed or removed: "sub:<sub>" (see userstore.ParseSubChange).
func SubInvalidationMessage(sub string) string { return userstore.SubChangePrefix + sub }

// Outcomes of a subject lookup, as subLookupScript answers them.
const (
	subAbsent   = 0 // no index key
	subFound    = 1 // the index and the user's hash agree
	subWrongKey = 2 // the index key holds another type than a string, or ""
	subStale    = 3 // the index names a user whose hash does not carry the sub
)

// subLookupScript reads a subject's index entry and checks it against the
// user's hash in one round trip. It reads a key it is not given (the
// user's hash, named by the index), which Redis allows outside Cluster;
// on a Cluster, where the hash is in another slot, userBySubCluster does
// the same in two round trips.
var subLookupScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return {0, ''} end
if t ~= 'string' then return {2, ''} end
local id = redis.call('GET', KEYS[1])
if id == '' then return {2, ''} end
local h = ARGV[1] .. id
if redis.call('TYPE', h)['ok'] ~= 'hash' or redis.call('HGET', h, 'sub') ~= ARGV[2] then
  return {3, id}
end
return {1, id}`)

// UserBySub implements userstore.Subjects: the user whose sub it is, when
// the index entry <prefix>sub:<sub> names a user whose hash has the same
// sub field. Anything else finds nobody, without an error: a missing entry;
// a malformed one (another type, an empty value, a user id lookups never
// ask for) or a stale one (the hash no longer carries the sub), which are
// counted (InvalidSubjects) and logged within the log budget — each is that
// subject's problem alone. A sub CheckSub refuses finds nobody without a
// round trip. Errors wrap userstore.ErrUnavailable (and the context's
// error) and never quote the sub.
func (s *Store) UserBySub(ctx context.Context, sub string) (string, bool, error) {
	if userstore.CheckSub(sub) != nil {
		return "", false, nil // no writer stores such a sub
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var outcome int64
	var id string
	var err error
	if s.topo != nil {
		outcome, id, err = s.userBySubCluster(ctx, sub)
	} else {
		outcome, id, err = s.userBySubScript(ctx, sub)
	}
	if err != nil {
		s.failed(err)
		return "", false, unavailable(ctx, "subject lookup", userstore.User, err)
	}
	switch outcome {
	case subAbsent:
		return "", false, nil
	case subFound:
		if canonical, err := userstore.CheckID(id, s.normalize); err != nil || canonical != id {
			s.badSubject(ctx, "the index names a user id lookups never ask for", "")
			return "", false, nil
		}
		return id, true, nil
	case subWrongKey:
		s.badSubject(ctx, "the index key holds another type than a string, or an empty string", "")
	case subStale:
		s.badSubject(ctx, "the index names a user whose record does not carry that sub", id)
	default:
		s.badSubject(ctx, "unexpected answer of the lookup script", "")
	}
	return "", false, nil
}

func (s *Store) userBySubScript(ctx context.Context, sub string) (int64, string, error) {
	res, err := subLookupScript.Run(ctx, s.client, []string{s.SubKey(sub)}, s.userPrefix, sub).Slice()
	if err != nil {
		return 0, "", err
	}
	if len(res) != 2 {
		return -1, "", nil
	}
	outcome, _ := res[0].(int64)
	id, _ := res[1].(string)
	return outcome, id, nil
}

// userBySubCluster is subLookupScript in two round trips: the index and
// the hash are in different slots.
func (s *Store) userBySubCluster(ctx context.Context, sub string) (int64, string, error) {
	id, err := s.client.Get(ctx, s.SubKey(sub)).Result()
	switch {
	case err == redis.Nil:
		return subAbsent, "", nil
	case isWrongType(err):
		return subWrongKey, "", nil
	case err != nil:
		return 0, "", err
	case id == "":
		return subWrongKey, "", nil
	}
	got, err := s.client.HGet(ctx, s.userPrefix+id, "sub").Result()
	switch {
	case err == redis.Nil, isWrongType(err):
		return subStale, id, nil
	case err != nil:
		return 0, "", err
	case got != sub:
		return subStale, id, nil
	}
	return subFound, id, nil
}

// badSubject counts and logs a malformed index entry. The sub is left out
// of the line (it comes from a token's introspection answer); the user id
// the entry names, when it is one, leads to the record.
func (s *Store) badSubject(ctx context.Context, what, id string) {
	s.badSubs.Add(1)
	if !s.logs.Enabled(ctx, s.log, slog.LevelWarn) {
		return
	}
	attrs := []slog.Attr{slog.String("problem", what)}
	if id != "" {
		if canonical, err := userstore.CheckID(id, nil); err == nil {
			attrs = append(attrs, slog.String("id", canonical))
		}
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "malformed subject index entry in Redis; that subject finds no user until it is rewritten", attrs...)
}

// InvalidSubjects returns how many malformed or stale subject index
// entries UserBySub has met, for metrics.
func (s *Store) InvalidSubjects() uint64 { return s.badSubs.Load() }

// subIndexedBy reports, for export, which records UserBySub finds by their
// sub: subs[i] is record ids[i]'s sub field ("" for none), and the answer
// is true where the index entry of subs[i] names ids[i]. One pipeline of
// GETs (routed per key on a Cluster).
func (s *Store) subIndexedBy(ctx context.Context, ids, subs []string) ([]bool, error) {
	out := make([]bool, len(ids))
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sub := range subs {
			if sub != "" {
				cmds[i] = p.Get(ctx, s.SubKey(sub))
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil && !isWrongType(err) {
		return nil, err
	}
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		v, err := cmd.Result()
		switch {
		case err == nil:
			out[i] = v == ids[i]
		case err == redis.Nil, isWrongType(err):
		default:
			return nil, err
		}
	}
	return out, nil
}
