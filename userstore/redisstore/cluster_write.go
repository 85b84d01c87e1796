package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// clusterPutScript is putScript for one record on a Cluster, without the
// index entries, which live in other slots: putCluster checks them before
// and writes them after. ARGV: blocked (0, or the code that refuses a new
// sub: putSubTaken, putSubWrongType), "1" for users, then the record's
// arguments as putScript takes them. It returns {code, old sub}.
var clusterPutScript = redis.NewScript(`
local blocked, users = tonumber(ARGV[1]), ARGV[2] == '1'
local a = 3
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then return {0, ''} end
local old = ''
local new = (ARGV[a + 4] == '1') and ARGV[a + 5] or ''
if users then
  old = redis.call('HGET', KEYS[1], 'sub') or ''
  if blocked ~= 0 and new ~= old then return {blocked, old} end
end
redis.call('HSET', KEYS[1], 'active', ARGV[a + 1])
if ARGV[a + 2] == '1' then
  redis.call('HSET', KEYS[1], 'email', ARGV[a + 3])
else
  redis.call('HDEL', KEYS[1], 'email')
end
local n = tonumber(ARGV[a + 6])
for j = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[a + 7 + 2 * j], ARGV[a + 8 + 2 * j])
end
if users then
  if new ~= '' then
    redis.call('HSET', KEYS[1], 'sub', new)
  else
    redis.call('HDEL', KEYS[1], 'sub')
  end
end
return {1, old}`)

// unindexScript deletes a sub's index entry if it names the user ARGV[1]:
// an entry another user has taken since is theirs.
var unindexScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// indexScript sets a sub's index entry unless its key holds another type.
var indexScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'string' and t ~= 'none' then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`)

// putCluster writes a batch on a Cluster, where a user's hash and its
// sub's index entry are in different slots and cannot be written by one
// script. Per record, in this order:
//
//  1. the new sub's index entry is read (with the hash of the user it
//     names): taken by another user, or of another type, it blocks the
//     record as putScript would;
//  2. the hash is written by one script (fields and sub field together),
//     which answers the sub it had;
//  3. the old sub's entry is deleted if it still names the user;
//  4. the new sub's entry is set.
//
// A lookup by sub trusts an entry only when the user's hash carries that
// sub (UserBySub), so every state in between, or left by a failure, finds
// nobody by the old or new sub until the write completes: it fails closed,
// and writing the batch again completes it. Two writers giving one sub to
// two users at once on a Cluster may both pass step 1; the later index
// write wins, and the other user is then not found by that sub.
func (ss *Session) putCluster(ctx context.Context, kind userstore.Kind, entries []userstore.Entry, groups []*group, out []putOutcome) error {
	blocked := make([]int64, len(entries))
	if kind == userstore.User {
		var err error
		if blocked, err = ss.subBlocked(ctx, entries); err != nil {
			return err
		}
	}
	users := activeValue(kind == userstore.User)
	for _, g := range groups {
		if err := clusterPutScript.Load(ctx, g.conn).Err(); err != nil {
			return err
		}
		cmds := make([]*redis.Cmd, len(g.keys))
		_, perr := g.conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, key := range g.keys {
				args := putArgs([]any{blocked[g.idx[j]], users}, g.entries[j])
				cmds[j] = clusterPutScript.EvalSha(ctx, p, []string{key}, args...)
			}
			return nil
		})
		ss.wrote[g.addr] = true
		var first error
		for j, cmd := range cmds {
			v, err := cmd.Result()
			if err == nil {
				var o putOutcome
				if o, err = parseOutcome(v); err == nil {
					out[g.idx[j]] = o
				}
			}
			if err != nil && first == nil {
				first = err
			}
		}
		if first == nil {
			first = perr
		}
		if first != nil {
			return first
		}
	}
	if kind != userstore.User {
		return nil
	}
	// Steps 3 and 4, pipelined per master on the session's connections
	// (so that Wait covers them).
	type op struct {
		script *redis.Script
		key    string
		id     string
	}
	var ops []op
	for i, e := range entries {
		o := out[i]
		if o.code != putWritten {
			continue
		}
		if o.old != "" && o.old != e.Sub {
			ops = append(ops, op{unindexScript, ss.s.SubKey(o.old), e.ID})
		}
		if e.Sub != "" && blocked[i] == 0 {
			ops = append(ops, op{indexScript, ss.s.SubKey(e.Sub), e.ID})
		}
	}
	type batch struct {
		conn *redis.Conn
		ops  []op
	}
	byAddr := map[string]*batch{}
	var order []string
	for _, o := range ops {
		c, addr, err := ss.conn(ctx, o.key)
		if err != nil {
			return fmt.Errorf("subject index: %w", err)
		}
		b := byAddr[addr]
		if b == nil {
			b = &batch{conn: c}
			byAddr[addr] = b
			order = append(order, addr)
		}
		b.ops = append(b.ops, o)
	}
	for _, addr := range order {
		b := byAddr[addr]
		for _, sc := range []*redis.Script{unindexScript, indexScript} {
			if err := sc.Load(ctx, b.conn).Err(); err != nil {
				return fmt.Errorf("subject index: %w", err)
			}
		}
		cmds, err := b.conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, o := range b.ops {
				o.script.EvalSha(ctx, p, []string{o.key}, o.id)
			}
			return nil
		})
		ss.wrote[addr] = true
		if err != nil {
			return fmt.Errorf("subject index (the records are written; their subs are found once this is written again): %w", err)
		}
		for _, c := range cmds {
			if c.Err() != nil {
				return fmt.Errorf("subject index: %w", c.Err())
			}
		}
	}
	return nil
}

// subBlocked is putCluster's step 1: for every entry with a sub, the code
// that refuses it if the sub is new for the user (see putScript), or 0.
func (ss *Session) subBlocked(ctx context.Context, entries []userstore.Entry) ([]int64, error) {
	blocked := make([]int64, len(entries))
	newSub := map[string]string{} // id -> sub it gets in this batch
	for _, e := range entries {
		newSub[e.ID] = e.Sub
	}
	gets := make([]*redis.StringCmd, len(entries))
	_, err := ss.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			if e.Sub != "" {
				gets[i] = p.Get(ctx, ss.s.SubKey(e.Sub))
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil && !isWrongType(err) {
		return nil, err
	}
	holders := map[int]string{}
	for i, cmd := range gets {
		if cmd == nil {
			continue
		}
		v, err := cmd.Result()
		switch {
		case err == redis.Nil:
		case isWrongType(err):
			blocked[i] = putSubWrongType
		case err != nil:
			return nil, err
		case v != "" && v != entries[i].ID:
			if sub, inBatch := newSub[v]; !inBatch || sub == entries[i].Sub {
				holders[i] = v
			}
		}
	}
	if len(holders) == 0 {
		return blocked, nil
	}
	subs := map[int]*redis.StringCmd{}
	_, err = ss.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, holder := range holders {
			subs[i] = p.HGet(ctx, ss.s.userPrefix+holder, "sub")
		}
		return nil
	})
	if err != nil && err != redis.Nil && !isWrongType(err) {
		return nil, err
	}
	for i, cmd := range subs {
		v, err := cmd.Result()
		switch {
		case err == redis.Nil, isWrongType(err):
		case err != nil:
			return nil, err
		case v == entries[i].Sub:
			blocked[i] = putSubTaken
		}
	}
	return blocked, nil
}

// SubConflicts returns, for the users of entries whose new sub cannot be
// written (see BatchResult.SubTaken and SubWrongType), the reason by id:
// what PutBatch would refuse, for writers that check a batch before
// writing any of it. The write scripts check again.
func (s *Store) SubConflicts(ctx context.Context, entries []userstore.Entry) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(entries); start += writeBatch {
		chunk := entries[start:min(start+writeBatch, len(entries))]
		rctx, cancel := context.WithTimeout(ctx, s.batchTimeout(len(chunk)))
		ss := &Session{s: s}
		blocked, err := ss.subBlocked(rctx, chunk)
		if err != nil {
			cancel()
			return nil, unavailable(rctx, "sub check", userstore.User, err)
		}
		olds := make([]*redis.StringCmd, len(chunk))
		_, err = s.client.Pipelined(rctx, func(p redis.Pipeliner) error {
			for i, e := range chunk {
				if blocked[i] != 0 {
					olds[i] = p.HGet(rctx, s.userPrefix+e.ID, "sub")
				}
			}
			return nil
		})
		if err != nil && err != redis.Nil && !isWrongType(err) {
			cancel()
			return nil, unavailable(rctx, "sub check", userstore.User, err)
		}
		cancel()
		for i, e := range chunk {
			if blocked[i] == 0 {
				continue
			}
			if old, err := olds[i].Result(); err == nil && old == e.Sub {
				continue // a sub the user has never blocks a write
			}
			switch blocked[i] {
			case putSubTaken:
				out[e.ID] = "its sub belongs to another user"
			default:
				out[e.ID] = fmt.Sprintf("the index key of its sub (%q) holds another type than a string", s.SubKey(e.Sub))
			}
		}
	}
	return out, nil
}
