package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// ErrWrongType reports records that were not written because their key
// holds another type than a hash (written by another client): lookups of
// such a key fail closed until an operator deletes or rewrites it.
var ErrWrongType = errors.New("key holds another type than a hash")

// WrongTypeError lists the records of a batch that were not written
// because their key holds another type. The others were written.
type WrongTypeError struct {
	Kind userstore.Kind
	IDs  []string
}

func (e *WrongTypeError) Error() string {
	return fmt.Sprintf("redisstore: put %s: %d record(s) not written, their key holds another type than a hash: %s",
		e.Kind, len(e.IDs), strings.Join(quoteAll(e.IDs), ", "))
}

// Unwrap makes errors.Is(err, ErrWrongType) true.
func (e *WrongTypeError) Unwrap() error { return ErrWrongType }

func quoteAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.Quote(id)
	}
	return out
}

// Put writes a record, then publishes its invalidation message. An empty
// Email removes a stored email; other fields of the hash are kept.
//
// The record's fields are written by one script on its key, so a reader
// sees either the old record or the new one, never a mix. The message is
// published after the write has succeeded, never before: a replica that
// drops its cached entry on the message and looks the record up again reads
// the new value. If the publish fails, the record is written and the error
// says so; replicas then see the change when their cached entry expires. A
// key of another type is not written (a *WrongTypeError).
func (s *Store) Put(ctx context.Context, kind userstore.Kind, r userstore.Record) error {
	return s.PutBatch(ctx, kind, []userstore.Record{r})
}

// PutBatch writes records as Put does, then publishes one invalidation
// message per record written. See Session.PutBatch for atomicity. A record
// whose key holds another type is not written and makes the error a
// *WrongTypeError; the others are written and published.
func (s *Store) PutBatch(ctx context.Context, kind userstore.Kind, recs []userstore.Record) error {
	entries := make([]userstore.Entry, len(recs))
	for i, r := range recs {
		entries[i] = userstore.Entry{Record: r}
	}
	ss := s.NewSession(SessionOptions{})
	defer ss.Close()
	res, err := ss.PutBatch(ctx, kind, entries)
	if err != nil {
		return err
	}
	if len(res.WrongType) > 0 {
		return &WrongTypeError{Kind: kind, IDs: res.WrongType}
	}
	if refused := append(res.SubTaken, res.SubWrongType...); len(refused) > 0 {
		return fmt.Errorf("redisstore: put %s: %d record(s) not written: %s: %w",
			kind, len(refused), strings.Join(quoteAll(refused), ", "), ErrSubConflict)
	}
	return nil
}

// ErrSubConflict reports users not written because the new sub they were
// given cannot be indexed: another user has it, or its index key holds
// another type than a string.
var ErrSubConflict = errors.New("the new sub belongs to another user, or its index key holds another type")

// SetActive sets the active field of an existing record and publishes its
// invalidation. It reports false, and writes nothing, when the record does
// not exist.
func (s *Store) SetActive(ctx context.Context, kind userstore.Kind, id string, active bool) (bool, error) {
	ss := s.NewSession(SessionOptions{})
	defer ss.Close()
	return ss.SetActive(ctx, kind, id, active)
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
	ss := s.NewSession(SessionOptions{})
	defer ss.Close()
	return ss.Remove(ctx, kind, id)
}

// WrongTyped returns the ids whose key exists with another type than a
// hash, with that type, by pipelined TYPE commands (routed per key on a
// Cluster). Writers check it before writing so that a batch is refused,
// or reported, before anything is written; the write scripts check again.
func (s *Store) WrongTyped(ctx context.Context, kind userstore.Kind, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(ids); start += writeBatch {
		chunk := ids[start:min(start+writeBatch, len(ids))]
		cmds := make([]*redis.StatusCmd, len(chunk))
		rctx, cancel := context.WithTimeout(ctx, s.batchTimeout(len(chunk)))
		_, err := s.client.Pipelined(rctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				key, err := s.Key(kind, id)
				if err != nil {
					return err
				}
				cmds[i] = p.Type(rctx, key)
			}
			return nil
		})
		if err != nil {
			cancel()
			return nil, unavailable(rctx, "type check", kind, err)
		}
		cancel()
		for i, cmd := range cmds {
			if t := cmd.Val(); t != "hash" && t != "none" {
				out[chunk[i]] = t
			}
		}
	}
	return out, nil
}

// writeBatch bounds the keys of one pipelined type check.
const writeBatch = 1000

// batchTimeout scales Timeout with the number of records of a batch: a
// thousand writes take longer than one lookup.
func (s *Store) batchTimeout(n int) time.Duration {
	return s.timeout + time.Duration(n)*50*time.Microsecond
}

// SessionOptions say how a Session waits for replicas.
type SessionOptions struct {
	// ReplicaWait bounds Session.Wait's WAIT for one replica's
	// acknowledgement; 0 makes Wait do nothing.
	ReplicaWait time.Duration
	// ExpectReplicas waits even when a master reports no connected replica
	// (Sentinel: a replica is part of the deployment, so none connected is
	// itself worth a warning). Otherwise a master without replicas (a
	// standalone Redis, a Cluster master without replicas) is not waited
	// for: WAIT would only burn the bound there.
	ExpectReplicas bool
}

// Session writes through dedicated connections, one per master, so that
// Wait can ask each master, on the connection that wrote, whether a replica
// acknowledged the writes: Redis's WAIT counts the replicas that have
// acknowledged everything the calling connection wrote, and a pooled
// connection that wrote nothing would answer at once. A Session is not
// safe for concurrent use; Close returns its connections.
type Session struct {
	s     *Store
	opts  SessionOptions
	conns map[string]*redis.Conn // by master address
	wrote map[string]bool
}

// NewSession starts a Session on s.
func (s *Store) NewSession(opts SessionOptions) *Session {
	return &Session{s: s, opts: opts, conns: map[string]*redis.Conn{}, wrote: map[string]bool{}}
}

// Close returns the session's connections to their pools.
func (ss *Session) Close() error {
	var errs []error
	for addr, c := range ss.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	clear(ss.conns)
	return errors.Join(errs...)
}

// conn returns the session's connection to the master of key, and that
// master's address.
func (ss *Session) conn(ctx context.Context, key string) (*redis.Conn, string, error) {
	var node *redis.Client
	switch c := ss.s.client.(type) {
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, "", err
		}
		node = n
	case *redis.Client:
		node = c
	default:
		return nil, "", fmt.Errorf("redisstore: writes need a standalone, Sentinel or Cluster client, not %T", ss.s.client)
	}
	addr := node.Options().Addr
	if addr == "FailoverClient" {
		// go-redis's placeholder for a Sentinel-managed client, which
		// dials whichever master the sentinels name.
		addr = "the Sentinel-managed master"
	}
	if c, ok := ss.conns[addr]; ok {
		return c, addr, nil
	}
	c := node.Conn()
	ss.conns[addr] = c
	return c, addr, nil
}

// BatchResult says what a batch wrote.
type BatchResult struct {
	// Written lists the ids written, in batch order; their invalidations
	// were published unless the error says otherwise.
	Written []string
	// WrongType lists the ids not written because their key holds another
	// type than a hash.
	WrongType []string
	// SubTaken lists the users not written because the new sub they were
	// given belongs to another user (whose hash carries it and whose
	// index entry names them).
	SubTaken []string
	// SubWrongType lists the users not written because the index key of
	// the new sub they were given holds another type than a string.
	SubWrongType []string
}

// putScript writes records whose keys are hashes or absent, and leaves
// alone those whose key holds another type, checking every key before
// writing any. Redis runs a script atomically, so nothing can slip between
// the check and the writes, and no reader sees part of the batch.
//
// For users it also keeps the subject index: the hash's sub field is set
// or removed, the index entry of the old sub is deleted when it names this
// user, and the new sub's entry is set to the user's id, all in the same
// atomic step. A sub whose index entry names another user whose hash
// carries it (and who does not give it up in this batch) is taken: the
// record is not written (2). An index key of another type than a string is
// not overwritten either (3). Neither refuses a record whose sub does not
// change: its other fields are written, its index entry left alone. The index keys are named in ARGV, not KEYS:
// Redis allows that outside Cluster, where this script runs; on a Cluster
// see Session.putCluster.
//
// ARGV: the sub index prefix, the user key prefix, "1" for users; then per
// record: id, active, "1" to set the email or "0" to remove it, the email,
// "1" to set the sub or "0" to remove it, the sub, the number n of extra
// fields, then n name/value pairs. It returns, per key, {code, old sub}:
// code 1 written, 0 wrong type, 2 sub taken, 3 index key of another type.
var putScript = redis.NewScript(`
local sp, up, users = ARGV[1], ARGV[2], ARGV[3] == '1'
local bad, at, newsub = {}, {}, {}
local a = 4
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  bad[i] = (t ~= 'hash' and t ~= 'none')
  at[i] = a
  if users and not bad[i] then
    newsub[ARGV[a]] = (ARGV[a + 4] == '1') and ARGV[a + 5] or ''
  end
  a = a + 7 + 2 * tonumber(ARGV[a + 6])
end
local out = {}
for i = 1, #KEYS do
  a = at[i]
  local id, code, old = ARGV[a], 1, ''
  local new = (ARGV[a + 4] == '1') and ARGV[a + 5] or ''
  local blocked = 0
  if bad[i] then
    code = 0
  elseif users then
    old = redis.call('HGET', KEYS[i], 'sub') or ''
    if new ~= '' then
      local ik = sp .. new
      local it = redis.call('TYPE', ik)['ok']
      if it ~= 'string' and it ~= 'none' then
        blocked = 3
      elseif it == 'string' then
        local holder = redis.call('GET', ik)
        if holder ~= id and holder ~= '' and redis.call('TYPE', up .. holder)['ok'] == 'hash'
            and redis.call('HGET', up .. holder, 'sub') == new
            and (newsub[holder] == nil or newsub[holder] == new) then
          blocked = 2
        end
      end
    end
    -- A new sub that cannot be indexed refuses the record; a sub the
    -- user already has never blocks a write (disabling must always work):
    -- its index entry is then left as it is.
    if blocked ~= 0 and new ~= old then
      code = blocked
    end
  end
  if code == 1 then
    redis.call('HSET', KEYS[i], 'active', ARGV[a + 1])
    if ARGV[a + 2] == '1' then
      redis.call('HSET', KEYS[i], 'email', ARGV[a + 3])
    else
      redis.call('HDEL', KEYS[i], 'email')
    end
    local n = tonumber(ARGV[a + 6])
    for j = 0, n - 1 do
      redis.call('HSET', KEYS[i], ARGV[a + 7 + 2 * j], ARGV[a + 8 + 2 * j])
    end
    if users then
      if new ~= '' then
        redis.call('HSET', KEYS[i], 'sub', new)
      else
        redis.call('HDEL', KEYS[i], 'sub')
      end
      if old ~= '' and old ~= new then
        local ok = sp .. old
        if redis.call('TYPE', ok)['ok'] == 'string' and redis.call('GET', ok) == id then
          redis.call('DEL', ok)
        end
      end
      if new ~= '' and blocked == 0 then
        redis.call('SET', sp .. new, id)
      end
    end
  end
  out[i] = {code, old}
end
return out`)

// Codes of the write scripts, per record.
const (
	putWrongType    = 0
	putWritten      = 1
	putSubTaken     = 2
	putSubWrongType = 3
)

func activeValue(active bool) string {
	if active {
		return "1"
	}
	return "0"
}

// putArgs appends e's script arguments to args (see putScript).
func putArgs(args []any, e userstore.Entry) []any {
	emailMode := "0"
	if e.EmailSet || e.Email != "" {
		emailMode = "1"
	}
	subMode := "0"
	if e.Sub != "" {
		subMode = "1"
	}
	names := make([]string, 0, len(e.Extra))
	for name := range e.Extra {
		if name != "active" && name != "email" && name != "sub" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	args = append(args, e.ID, activeValue(e.Active), emailMode, e.Email, subMode, e.Sub, len(names))
	for _, name := range names {
		args = append(args, name, e.Extra[name])
	}
	return args
}

// globalArgs are putScript's first three arguments.
func (s *Store) globalArgs(kind userstore.Kind) []any {
	return []any{s.subPrefix, s.userPrefix, activeValue(kind == userstore.User)}
}

// group is the part of a batch on one master.
type group struct {
	addr    string
	conn    *redis.Conn
	idx     []int // positions in the batch
	keys    []string
	entries []userstore.Entry
}

// PutBatch writes entries (fields as Put writes them, plus Extra; EmailSet
// writes an empty email; for users the sub and its index entry), then
// publishes one invalidation message per record written, and "sub:<sub>"
// for every sub a written user gained or lost.
//
// Against a standalone or Sentinel-managed Redis the batch is one script
// (putScript): every key is checked first, then every record whose key is
// a hash or absent is written with its index entries, atomically. A Redis
// Cluster cannot run a script over keys of different slots, so there each
// record is its own one-key script, pipelined per master, and its index
// entries are written after it (see putCluster): each record's hash is
// still checked and written whole, but a failure part-way leaves part of
// the batch written (BatchResult and the error say which). Records whose
// key holds another type are listed in WrongType, not written, and not an
// error: they are that record's problem alone; so are users whose new sub
// cannot be indexed (SubTaken, SubWrongType). Records must have non-empty
// ids.
func (ss *Session) PutBatch(ctx context.Context, kind userstore.Kind, entries []userstore.Entry) (BatchResult, error) {
	var res BatchResult
	if len(entries) == 0 {
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.batchTimeout(len(entries)))
	defer cancel()
	var groups []*group
	byAddr := map[string]*group{}
	for i, e := range entries {
		if e.ID == "" {
			return res, fmt.Errorf("redisstore: put %s: empty id", kind)
		}
		if e.Sub != "" && kind != userstore.User {
			return res, fmt.Errorf("redisstore: put %s %q: only users have a sub", kind, e.ID)
		}
		key, err := ss.s.Key(kind, e.ID)
		if err != nil {
			return res, err
		}
		c, addr, err := ss.conn(ctx, key)
		if err != nil {
			return res, unavailable(ctx, "put", kind, err)
		}
		g := byAddr[addr]
		if g == nil {
			g = &group{addr: addr, conn: c}
			byAddr[addr] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.keys = append(g.keys, key)
		g.entries = append(g.entries, e)
	}
	_, cluster := ss.s.client.(*redis.ClusterClient)
	out := make([]putOutcome, len(entries))
	for i := range out {
		out[i].code = -1 // unknown
	}
	var failed error
	if cluster {
		if err := ss.putCluster(ctx, kind, entries, groups, out); err != nil {
			failed = unavailable(ctx, "put", kind, err)
		}
	} else {
		for _, g := range groups {
			err := ss.putAll(ctx, kind, g, out)
			ss.wrote[g.addr] = true // a failed script may still have written
			if err != nil {
				failed = unavailable(ctx, "put", kind, err)
				break
			}
		}
	}
	var subs []string // changed subs, old and new
	for i, o := range out {
		id := entries[i].ID
		switch o.code {
		case putWritten:
			res.Written = append(res.Written, id)
			if o.old != entries[i].Sub {
				for _, sub := range []string{o.old, entries[i].Sub} {
					if sub != "" {
						subs = append(subs, sub)
					}
				}
			}
		case putWrongType:
			res.WrongType = append(res.WrongType, id)
		case putSubTaken:
			res.SubTaken = append(res.SubTaken, id)
		case putSubWrongType:
			res.SubWrongType = append(res.SubWrongType, id)
		}
	}
	if failed != nil {
		return res, fmt.Errorf("%w (records written before the failure: %d, published: none; a record is written whole or not at all, and writing again is safe)",
			failed, len(res.Written))
	}
	slices.Sort(subs)
	return res, ss.publish(ctx, kind, res.Written, slices.Compact(subs))
}

// putOutcome is what the write scripts answered for one record: a put
// code and the sub the user had before.
type putOutcome struct {
	code int64
	old  string
}

// parseOutcome reads one {code, old sub} answer of a write script.
func parseOutcome(v any) (putOutcome, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return putOutcome{}, fmt.Errorf("the write script answered %T, want {code, sub}", v)
	}
	code, ok := pair[0].(int64)
	if !ok {
		return putOutcome{}, fmt.Errorf("the write script answered a code of type %T", pair[0])
	}
	old, _ := pair[1].(string)
	return putOutcome{code: code, old: old}, nil
}

// putAll writes a group as one script.
func (ss *Session) putAll(ctx context.Context, kind userstore.Kind, g *group, out []putOutcome) error {
	args := ss.s.globalArgs(kind)
	for _, e := range g.entries {
		args = putArgs(args, e)
	}
	res, err := putScript.Run(ctx, g.conn, g.keys, args...).Slice()
	if err != nil {
		return err
	}
	if len(res) != len(g.keys) {
		return fmt.Errorf("the write script answered %d results for %d keys", len(res), len(g.keys))
	}
	for j, v := range res {
		o, err := parseOutcome(v)
		if err != nil {
			return err
		}
		out[g.idx[j]] = o
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
func (ss *Session) SetActive(ctx context.Context, kind userstore.Kind, id string, active bool) (bool, error) {
	key, err := ss.s.Key(kind, id)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	defer cancel()
	c, addr, err := ss.conn(ctx, key)
	if err != nil {
		return false, unavailable(ctx, "set active", kind, err)
	}
	n, err := setActiveScript.Run(ctx, c, []string{key}, activeValue(active)).Int()
	if err != nil {
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			return false, &WrongTypeError{Kind: kind, IDs: []string{id}}
		}
		return false, unavailable(ctx, "set active", kind, err)
	}
	if n == 0 {
		return false, nil
	}
	ss.wrote[addr] = true
	return true, ss.publish(ctx, kind, []string{id}, nil)
}

// removeScript deletes a record (of any type) and answers {deleted, the
// user's sub}. With ARGV[2] "1" (not on a Cluster, where the index entry
// is in another slot) it also deletes the sub's index entry when it names
// the user, in the same atomic step. ARGV: "1" for users, inline, the sub
// index prefix, the id.
var removeScript = redis.NewScript(`
local old = ''
if ARGV[1] == '1' and redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
  old = redis.call('HGET', KEYS[1], 'sub') or ''
end
local n = redis.call('DEL', KEYS[1])
if ARGV[2] == '1' and old ~= '' then
  local ik = ARGV[3] .. old
  if redis.call('TYPE', ik)['ok'] == 'string' and redis.call('GET', ik) == ARGV[4] then
    redis.call('DEL', ik)
  end
end
return {n, old}`)

// Remove deletes a record and reports whether it existed; a user's sub
// index entry goes with it (on a Cluster just after the hash: an entry
// left by a failure in between names a user who no longer carries the sub,
// which finds nobody). The invalidation is published either way (a cache
// may hold a record that another tool deleted without publishing), with
// "sub:<sub>" for the sub the user had.
func (ss *Session) Remove(ctx context.Context, kind userstore.Kind, id string) (bool, error) {
	key, err := ss.s.Key(kind, id)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	defer cancel()
	c, addr, err := ss.conn(ctx, key)
	if err != nil {
		return false, unavailable(ctx, "delete", kind, err)
	}
	_, cluster := ss.s.client.(*redis.ClusterClient)
	v, err := removeScript.Run(ctx, c, []string{key}, activeValue(kind == userstore.User), activeValue(!cluster), ss.s.subPrefix, id).Result()
	var o putOutcome
	if err == nil {
		o, err = parseOutcome(v)
	}
	if err != nil {
		return false, unavailable(ctx, "delete", kind, err)
	}
	if o.code > 0 {
		ss.wrote[addr] = true
	}
	var subs []string
	if o.old != "" {
		subs = []string{o.old}
		if cluster {
			ik := ss.s.SubKey(o.old)
			ic, iaddr, err := ss.conn(ctx, ik)
			if err == nil {
				err = unindexScript.Run(ctx, ic, []string{ik}, id).Err()
				ss.wrote[iaddr] = true
			}
			if err != nil {
				return o.code > 0, unavailable(ctx, "delete the subject index entry of", kind, err)
			}
		}
	}
	return o.code > 0, ss.publish(ctx, kind, []string{id}, subs)
}

// publish sends one invalidation message per id and one per changed sub,
// pipelined, through the store's pool (PUBLISH reaches every subscriber
// from any node).
func (ss *Session) publish(ctx context.Context, kind userstore.Kind, ids, subs []string) error {
	if len(ids) == 0 && len(subs) == 0 {
		return nil
	}
	_, err := ss.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Publish(ctx, ss.s.channel, InvalidationMessage(kind, id))
		}
		for _, sub := range subs {
			p.Publish(ctx, ss.s.channel, SubInvalidationMessage(sub))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: %s written, but publishing the invalidation failed (replicas see the change when their cache expires): %w",
			kind, unavailable(ctx, "publish", kind, err))
	}
	return nil
}

// Ack is what Session.Wait learnt about replication.
type Ack struct {
	// Waited lists the masters asked to WAIT.
	Waited []string
	// Unacked lists the masters where no replica acknowledged the
	// session's writes within the bound: a failover now could lose them.
	Unacked []string
	// NoReplicas lists the masters that wrote but report no connected
	// replica, and so were not waited for.
	NoReplicas []string
}

// Wait asks every master the session wrote to for one replica's
// acknowledgement of everything the session wrote there (WAIT 1 <bound>),
// concurrently, each bounded by ReplicaWait. Redis replicates
// asynchronously: a change a master acknowledged is lost if it fails before
// a replica has it. Masters without a connected replica are not waited for
// unless ExpectReplicas. WAIT does not make a write durable: it tells
// whether a replica has it. An error means Wait could not ask.
func (ss *Session) Wait(ctx context.Context) (Ack, error) {
	var ack Ack
	if ss.opts.ReplicaWait <= 0 {
		return ack, nil
	}
	addrs := make([]string, 0, len(ss.wrote))
	for addr := range ss.wrote {
		addrs = append(addrs, addr)
	}
	slices.Sort(addrs)
	type outcome struct {
		waited, acked, none bool
		err                 error
	}
	outs := make([]outcome, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		c := ss.conns[addr]
		wg.Go(func() {
			o := &outs[i]
			if !ss.opts.ExpectReplicas {
				n, err := connectedReplicas(ctx, c, ss.s.timeout)
				if err == nil && n == 0 {
					o.none = true
					return
				}
				// Unknown (INFO refused, say): wait anyway, failing safe.
			}
			wctx, cancel := context.WithTimeout(ctx, ss.s.timeout+ss.opts.ReplicaWait)
			defer cancel()
			n, err := c.Wait(wctx, 1, ss.opts.ReplicaWait).Result()
			if err != nil {
				o.err = fmt.Errorf("redisstore: WAIT on %s: %w", addr, err)
				return
			}
			o.waited, o.acked = true, n > 0
		})
	}
	wg.Wait()
	var errs []error
	for i, o := range outs {
		switch {
		case o.err != nil:
			errs = append(errs, o.err)
		case o.none:
			ack.NoReplicas = append(ack.NoReplicas, addrs[i])
		case o.waited:
			ack.Waited = append(ack.Waited, addrs[i])
			if !o.acked {
				ack.Unacked = append(ack.Unacked, addrs[i])
			}
		}
	}
	return ack, errors.Join(errs...)
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(ctx context.Context, c *redis.Conn, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO replication has no connected_slaves")
}
