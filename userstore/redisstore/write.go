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
	return nil
}

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
}

// putScript writes records whose keys are hashes or absent, and leaves
// alone those whose key holds another type, checking every key before
// writing any. Redis runs a script atomically, so nothing can slip between
// the check and the writes, and no reader sees part of the batch. It
// returns one integer per key: 1 written, 0 wrong type.
//
// ARGV holds, per key: active, "1" to set the email or "0" to remove it,
// the email, the number n of extra fields, then n name/value pairs.
var putScript = redis.NewScript(`
local bad = {}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  bad[i] = (t ~= 'hash' and t ~= 'none')
end
local out = {}
local a = 1
for i = 1, #KEYS do
  local n = tonumber(ARGV[a + 3])
  if bad[i] then
    out[i] = 0
  else
    redis.call('HSET', KEYS[i], 'active', ARGV[a])
    if ARGV[a + 1] == '1' then
      redis.call('HSET', KEYS[i], 'email', ARGV[a + 2])
    else
      redis.call('HDEL', KEYS[i], 'email')
    end
    for j = 0, n - 1 do
      redis.call('HSET', KEYS[i], ARGV[a + 4 + 2 * j], ARGV[a + 5 + 2 * j])
    end
    out[i] = 1
  end
  a = a + 4 + 2 * n
end
return out`)

func activeValue(active bool) string {
	if active {
		return "1"
	}
	return "0"
}

// putArgs appends e's script arguments to args.
func putArgs(args []any, e userstore.Entry) []any {
	emailMode := "0"
	if e.EmailSet || e.Email != "" {
		emailMode = "1"
	}
	names := make([]string, 0, len(e.Extra))
	for name := range e.Extra {
		if name != "active" && name != "email" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	args = append(args, activeValue(e.Active), emailMode, e.Email, len(names))
	for _, name := range names {
		args = append(args, name, e.Extra[name])
	}
	return args
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
// writes an empty email), then publishes one invalidation message per
// record written.
//
// Against a standalone or Sentinel-managed Redis the batch is one script:
// every key is checked first, then every record whose key is a hash or
// absent is written, atomically. A Redis Cluster cannot run a script over
// keys of different slots, so there each record is its own one-key script,
// pipelined per master: each record is still checked and written whole,
// but a failure part-way leaves part of the batch written (BatchResult and
// the error say which). Records whose key holds another type are listed in
// WrongType, not written, and not an error: they are that record's
// problem alone. Records must have non-empty ids.
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
	status := make([]int64, len(entries)) // 1 written, 0 wrong type, -1 unknown
	for i := range status {
		status[i] = -1
	}
	var failed error
	for _, g := range groups {
		var err error
		if cluster {
			err = ss.putEach(ctx, g, status)
		} else {
			err = ss.putAll(ctx, g, status)
		}
		ss.wrote[g.addr] = true // a failed script may still have written
		if err != nil {
			failed = unavailable(ctx, "put", kind, err)
			break
		}
	}
	for i, st := range status {
		switch st {
		case 1:
			res.Written = append(res.Written, entries[i].ID)
		case 0:
			res.WrongType = append(res.WrongType, entries[i].ID)
		}
	}
	if failed != nil {
		return res, fmt.Errorf("%w (records written before the failure: %d, published: none; a record is written whole or not at all, and writing again is safe)",
			failed, len(res.Written))
	}
	return res, ss.publish(ctx, kind, res.Written)
}

// putAll writes a group as one script.
func (ss *Session) putAll(ctx context.Context, g *group, status []int64) error {
	var args []any
	for _, e := range g.entries {
		args = putArgs(args, e)
	}
	out, err := putScript.Run(ctx, g.conn, g.keys, args...).Int64Slice()
	if err != nil {
		return err
	}
	if len(out) != len(g.keys) {
		return fmt.Errorf("the write script answered %d results for %d keys", len(out), len(g.keys))
	}
	for j, v := range out {
		status[g.idx[j]] = v
	}
	return nil
}

// putEach writes a group as one-key scripts, pipelined.
func (ss *Session) putEach(ctx context.Context, g *group, status []int64) error {
	if err := putScript.Load(ctx, g.conn).Err(); err != nil {
		return err
	}
	cmds := make([]*redis.Cmd, len(g.keys))
	_, err := g.conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, key := range g.keys {
			cmds[j] = putScript.EvalSha(ctx, p, []string{key}, putArgs(nil, g.entries[j])...)
		}
		return nil
	})
	var first error
	for j, cmd := range cmds {
		out, cerr := cmd.Int64Slice()
		switch {
		case cerr != nil:
			if first == nil {
				first = cerr
			}
		case len(out) == 1:
			status[g.idx[j]] = out[0]
		}
	}
	if first != nil {
		return first
	}
	return err
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
	return true, ss.publish(ctx, kind, []string{id})
}

// Remove deletes a record and reports whether it existed. The invalidation
// is published either way (a cache may hold a record that another tool
// deleted without publishing).
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
	n, err := c.Del(ctx, key).Result()
	if err != nil {
		return false, unavailable(ctx, "delete", kind, err)
	}
	if n > 0 {
		ss.wrote[addr] = true
	}
	return n > 0, ss.publish(ctx, kind, []string{id})
}

// publish sends one invalidation message per id, pipelined, through the
// store's pool (PUBLISH reaches every subscriber from any node).
func (ss *Session) publish(ctx context.Context, kind userstore.Kind, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := ss.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Publish(ctx, ss.s.channel, InvalidationMessage(kind, id))
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
