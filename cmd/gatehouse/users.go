package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Directory command settings.
const (
	// importBatch records are written per MULTI/EXEC.
	importBatch = 1000
	// progressOver: imports of more records print progress lines.
	progressOver = 5000
	// minCLITimeout: the directory commands are not on a request path, so
	// they wait for Redis longer than serve's per-lookup timeout.
	minCLITimeout = 5 * time.Second
	// defaultReplicaWait bounds the wait for a replica's acknowledgement
	// after a change (--replica-wait).
	defaultReplicaWait = time.Second
)

// exitNotFound: the record does not exist (get, enable, disable, delete),
// or an import rejected lines.
const exitNotFound = 1

// exitNotReplicated: the change is made on the master, but no replica
// acknowledged it within --replica-wait.
const exitNotReplicated = 3

func runUsers(ctx context.Context, e env, args []string) int {
	return runDirectory(ctx, e, userstore.User, args)
}

func runApps(ctx context.Context, e env, args []string) int {
	return runDirectory(ctx, e, userstore.App, args)
}

func directoryUsage(w io.Writer, kind userstore.Kind) {
	k := kind.String()
	noun := map[userstore.Kind]string{userstore.User: "users", userstore.App: "apps"}[kind]
	fmt.Fprintf(w, `Usage: gatehouse %[1]s COMMAND [flags] ARGS

Manage the %[2]s records of the Redis directory (<prefix>%[2]s:<id>); every
change publishes "%[2]s:<id>" on <prefix>invalidate so that every replica drops
its cached entry at once.

Commands:
  put ID [--inactive] [--email E] [--sub S]
                                    write a record (active unless --inactive);
                                    --sub (users only): the OIDC subject that
                                    finds the user (<prefix>sub:<sub>)
  enable ID | disable ID            change an existing record (exit 1 if absent)
  delete ID                         remove a record (exit 1 if absent)
  get ID                            print the record as JSON (exit 1 if absent)
  import FILE [--skip-invalid] [--dry-run]
                                    JSON lines {"id","active","email","sub","extra"}
                                    (as export writes them) or CSV with a header
                                    id,active[,email][,sub]; "-" reads stdin
  export [--allow-skipped]          print every record lookups see as JSON lines;
                                    every key left out or not exact is listed on
                                    stderr, and makes the exit 1 unless --allow-skipped

The commands that write wait up to --replica-wait (default 1s; 0: do not wait)
for a replica to acknowledge the change (Redis WAIT), when the master has
replicas (always with Sentinel).

Exit codes: 0 done, 1 not found (or rejected import lines, or keys export
skipped), 2 usage, configuration or Redis error, 3 done on the master but no
replica acknowledged it within --replica-wait (check the replicas). Redis
settings are serve's (GATEHOUSE_REDIS_*, --redis-url, ...);
"gatehouse %[1]s COMMAND -h" lists them.
`, noun, k)
}

// dirCmd is one parsed directory command.
type dirCmd struct {
	e     env
	kind  userstore.Kind
	noun  string
	cfg   config.Config
	store *redisstore.Store
	norm  func(string) (string, bool)
	// session writes through one connection per master, so that WAIT
	// covers every write of the command.
	session *redisstore.Session
	wait    time.Duration
}

func runDirectory(ctx context.Context, e env, kind userstore.Kind, args []string) int {
	noun := map[userstore.Kind]string{userstore.User: "users", userstore.App: "apps"}[kind]
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			directoryUsage(e.stderr, kind)
			return exitUsage
		}
		directoryUsage(e.stdout, kind)
		return exitOK
	}
	sub, rest := args[0], args[1:]
	wantArgs := map[string]int{"put": 1, "enable": 1, "disable": 1, "delete": 1, "get": 1, "import": 1, "export": 0}
	n, known := wantArgs[sub]
	if !known {
		return fail(e, fmt.Errorf("%s: unknown command %q (put, enable, disable, delete, get, import, export)", noun, sub))
	}
	cfg := config.Default()
	fs := flag.NewFlagSet("gatehouse "+noun+" "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stdout)
	b := config.Bind(&cfg, fs, config.GroupRedis, e.lookup)
	var inactive, skipInvalid, dryRun, allowSkipped bool
	var email, subject string
	replicaWait := defaultReplicaWait
	switch sub {
	case "put":
		fs.BoolVar(&inactive, "inactive", false, "write the record disabled")
		fs.StringVar(&email, "email", "", "optional `email` stored with the record")
		if kind == userstore.User {
			fs.StringVar(&subject, "sub", "", "optional OIDC `subject` of the user (Meet's meet_user.sub); without it a stored sub is removed")
		}
	case "import":
		fs.BoolVar(&skipInvalid, "skip-invalid", false, "write the valid records even when some lines are rejected (default: write nothing then)")
		fs.BoolVar(&dryRun, "dry-run", false, "check the file and report, write nothing")
	case "export":
		fs.BoolVar(&allowSkipped, "allow-skipped", false, "exit 0 even when keys were skipped or exported inexactly (they are still listed on stderr)")
	}
	switch sub {
	case "put", "enable", "disable", "delete", "import":
		fs.DurationVar(&replicaWait, "replica-wait", defaultReplicaWait,
			"after the change, wait up to this long for a replica to acknowledge it (Redis WAIT) when the master has replicas; exit 3 if none did; 0: do not wait")
	}
	pos, err := parseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return fail(e, fmt.Errorf("%s %s: %w", noun, sub, err))
	}
	if len(pos) != n {
		if n == 0 {
			return fail(e, fmt.Errorf("%s %s: takes no argument, got %q", noun, sub, pos))
		}
		return fail(e, fmt.Errorf("%s %s: want exactly one argument, got %d (see gatehouse %s -h)", noun, sub, len(pos), noun))
	}
	if err := b.Finish(); err != nil {
		return fail(e, err)
	}
	warnUnknownVariablesOnStderr(e)
	if cfg.DirectoryOrigin != "" {
		// Redis holds only the origin's cached answers, which expire: a
		// record written there would be overwritten, or shadow the record.
		return fail(e, fmt.Errorf("%s %s: the directory of record is GATEHOUSE_DIRECTORY_ORIGIN (%s), not Redis: change the %s there; Redis holds only its cached answers, which expire by themselves (GATEHOUSE_REDIS_CACHE_TTL)",
			noun, sub, redisstore.RedactURL(cfg.DirectoryOrigin), noun))
	}
	if err := cfg.ValidateRedis(); err != nil {
		return fail(e, err)
	}
	if _, err := authz.ParseIDFormat(cfg.UserIDFormat); err != nil || cfg.UserIDFormat == "" {
		return fail(e, fmt.Errorf("GATEHOUSE_USER_ID_FORMAT: unknown format %q (want uuid or opaque)", cfg.UserIDFormat))
	}
	if replicaWait < 0 {
		return fail(e, fmt.Errorf("%s %s: --replica-wait %s is negative", noun, sub, replicaWait))
	}
	cc, err := cfg.RedisClientConfig()
	if err != nil {
		return fail(e, err)
	}
	client, mode, err := redisstore.NewUniversalClient(cc)
	if err != nil {
		return fail(e, fmt.Errorf("redis: %w", err))
	}
	defer client.Close()
	d := &dirCmd{e: e, kind: kind, noun: noun, cfg: cfg, wait: replicaWait}
	if kind == userstore.User && cfg.IDFormat() == authz.IDFormatUUID {
		d.norm = authz.NormalizeUUID
	}
	// The store checks subject index entries as serve's does: export
	// carries a sub only if lookups by it find the user.
	d.store = redisstore.New(client, redisstore.Options{Prefix: cfg.RedisPrefix, Timeout: max(cfg.RedisTimeout, minCLITimeout), NormalizeUserID: d.norm})
	d.session = d.store.NewSession(redisstore.SessionOptions{ReplicaWait: replicaWait, ExpectReplicas: mode == redisstore.Sentinel})
	defer d.session.Close()
	switch sub {
	case "put":
		return d.put(ctx, pos[0], !inactive, email, subject)
	case "enable", "disable":
		return d.setActive(ctx, pos[0], sub == "enable")
	case "delete":
		return d.delete(ctx, pos[0])
	case "get":
		return d.get(ctx, pos[0])
	case "import":
		return d.importFile(ctx, pos[0], skipInvalid, dryRun)
	default:
		return d.export(ctx, allowSkipped)
	}
}

// parseInterleaved parses flags placed before, between or after the
// positional arguments ("put ID --inactive" and "put --inactive ID").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
			fs.SetOutput(out)
			fs.PrintDefaults()
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// id validates and normalises an id given on the command line.
func (d *dirCmd) id(raw string) (string, error) {
	id, err := userstore.CheckID(raw, d.norm)
	if err != nil {
		return "", fmt.Errorf("%s: %w", d.noun, err)
	}
	return id, nil
}

func (d *dirCmd) put(ctx context.Context, raw string, active bool, email, subject string) int {
	id, err := d.id(raw)
	if err != nil {
		return fail(d.e, err)
	}
	if err := userstore.CheckEmail(email); err != nil {
		return fail(d.e, fmt.Errorf("%s put: %w", d.noun, err))
	}
	if subject != "" {
		if err := userstore.CheckSub(subject); err != nil {
			return fail(d.e, fmt.Errorf("%s put: --sub: %w", d.noun, err))
		}
	}
	res, err := d.session.PutBatch(ctx, d.kind, []userstore.Entry{{Record: userstore.Record{ID: id, Active: active, Email: email, Sub: subject}}})
	if err != nil {
		return fail(d.e, err)
	}
	if len(res.WrongType) > 0 {
		return fail(d.e, d.wrongType(ctx, id))
	}
	if len(res.SubTaken)+len(res.SubWrongType) > 0 {
		what := "it belongs to another user (delete or change theirs first)"
		if len(res.SubWrongType) > 0 {
			what = fmt.Sprintf("its index key %q holds another type than a string (delete it first)", d.store.SubKey(subject))
		}
		return fail(d.e, fmt.Errorf("%s %s: --sub: %s: nothing written", d.kind, id, what))
	}
	fmt.Fprintf(d.e.stdout, "%s %s written (%s)\n", d.kind, id, activeWord(active))
	return d.waitReplicas(ctx, exitOK)
}

// wrongType is the error for a record whose key holds another type.
func (d *dirCmd) wrongType(ctx context.Context, id string) error {
	key, _ := d.store.Key(d.kind, id)
	what := "another type"
	if types, err := d.store.WrongTyped(ctx, d.kind, []string{id}); err == nil && types[id] != "" {
		what = "a " + types[id]
	}
	return fmt.Errorf("%s %s: key %q holds %s, not a hash: nothing written (lookups of it are denied until it is deleted, e.g. redis-cli DEL)",
		d.kind, id, key, what)
}

// waitReplicas asks the masters written to for a replica's acknowledgement
// (Session.Wait) and warns when none came. A change acknowledged by a master
// alone is lost if the master fails before replicating it, so the operator
// must know. code is the command's exit code so far; exitNotReplicated
// replaces exitOK only.
func (d *dirCmd) waitReplicas(ctx context.Context, code int) int {
	ack, err := d.session.Wait(ctx)
	var unacked []string
	switch {
	case err != nil:
		fmt.Fprintf(d.e.stderr, "gatehouse: warning: could not ask whether a replica has the change: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		unacked = []string{"?"}
	case len(ack.Unacked) > 0:
		unacked = ack.Unacked
		fmt.Fprintf(d.e.stderr, "gatehouse: warning: no replica acknowledged the change within %s (WAIT on master %s): "+
			"it is on the master only, and a failover before it replicates would lose it. "+
			"Check the replicas (INFO replication on the master: connected_slaves and each replica's lag; on a replica: master_link_status), "+
			"then run the command again or read the record back once a replica has caught up\n",
			d.wait, strings.Join(ack.Unacked, ", "))
	}
	if len(unacked) > 0 && code == exitOK {
		return exitNotReplicated
	}
	return code
}

func activeWord(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

func (d *dirCmd) setActive(ctx context.Context, raw string, active bool) int {
	id, err := d.id(raw)
	if err != nil {
		return fail(d.e, err)
	}
	found, err := d.session.SetActive(ctx, d.kind, id, active)
	if errors.Is(err, redisstore.ErrWrongType) {
		return fail(d.e, d.wrongType(ctx, id))
	}
	if err != nil {
		return fail(d.e, err)
	}
	if !found {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s %s not found; nothing written (use put to create it)\n", d.kind, id)
		return exitNotFound
	}
	fmt.Fprintf(d.e.stdout, "%s %s %s\n", d.kind, id, map[bool]string{true: "enabled", false: "disabled"}[active])
	return d.waitReplicas(ctx, exitOK)
}

func (d *dirCmd) delete(ctx context.Context, raw string) int {
	id, err := d.id(raw)
	if err != nil {
		return fail(d.e, err)
	}
	existed, err := d.session.Remove(ctx, d.kind, id)
	if err != nil {
		return fail(d.e, err)
	}
	if !existed {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s %s not found\n", d.kind, id)
		return exitNotFound
	}
	fmt.Fprintf(d.e.stdout, "%s %s deleted\n", d.kind, id)
	return d.waitReplicas(ctx, exitOK)
}

func (d *dirCmd) get(ctx context.Context, raw string) int {
	id, err := d.id(raw)
	if err != nil {
		return fail(d.e, err)
	}
	rec, found, err := d.store.Get(ctx, d.kind, id)
	if err != nil {
		return fail(d.e, err)
	}
	if !found {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s %s not found\n", d.kind, id)
		return exitNotFound
	}
	if err := json.NewEncoder(d.e.stdout).Encode(rec); err != nil {
		return fail(d.e, err)
	}
	return exitOK
}

// exportLine is one line of an export: what import reads back.
type exportLine struct {
	ID     string            `json:"id"`
	Active bool              `json:"active"`
	Email  *string           `json:"email,omitempty"`
	Sub    string            `json:"sub,omitempty"`
	Extra  map[string]string `json:"extra,omitempty"`
}

// export prints, as JSON lines, exactly what lookups see: one line per key
// whose id the decision core can ask for, with the status a lookup gives it
// ("active": true only for a hash whose "active" is "1"). Import writes the
// lines back byte for byte, so that export | import leaves every decision
// as it was. What cannot be carried exactly is never rewritten silently:
// keys lookups never ask for (a non-canonical UUID, an id a token cannot
// carry) are skipped, records whose decision can be kept only by changing
// bytes (another type than a hash, no or an odd "active", a field that is
// not UTF-8) are exported as lookups read them, and each such key is listed
// on stderr, counted, and makes the exit 1 unless --allow-skipped.
func (d *dirCmd) export(ctx context.Context, allowSkipped bool) int {
	w := bufio.NewWriterSize(d.e.stdout, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	n, skipped, inexact := 0, 0, 0
	err := d.store.ScanRaw(ctx, d.kind, func(r redisstore.RawRecord) error {
		line, notes, skip := d.exportRecord(r)
		if skip != "" {
			skipped++
			fmt.Fprintf(d.e.stderr, "gatehouse: skipped %q: %s\n", r.Key, skip)
			return nil
		}
		for {
			buf.Reset()
			if err := enc.Encode(line); err != nil {
				return err
			}
			if buf.Len() < userstore.MaxLineLen {
				break
			}
			// Import refuses longer lines: keep the decision, drop the rest.
			switch {
			case line.Extra != nil:
				line.Extra = nil
				notes = append(notes, "other fields left out: the line would pass import's line limit")
			case line.Email != nil:
				line.Email = nil
				notes = append(notes, "email left out: the line would pass import's line limit")
			default:
				return fmt.Errorf("record %q longer than %d bytes", r.Key, userstore.MaxLineLen)
			}
		}
		if len(notes) > 0 {
			inexact++
			fmt.Fprintf(d.e.stderr, "gatehouse: inexact %q: %s\n", r.Key, strings.Join(notes, "; "))
		}
		n++
		_, err := w.Write(buf.Bytes())
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fail(d.e, fmt.Errorf("%s export after %d records: %w", d.noun, n, err))
	}
	keys := "keys"
	if skipped == 1 {
		keys = "key"
	}
	fmt.Fprintf(d.e.stderr, "gatehouse: exported %d %s; %d %s skipped, %d exported inexactly\n", n, d.noun, skipped, keys, inexact)
	if skipped+inexact > 0 && !allowSkipped {
		fmt.Fprintf(d.e.stderr, "gatehouse: exit 1: the keys listed above are not in the export as they are in Redis (--allow-skipped exits 0)\n")
		return exitNotFound
	}
	return exitOK
}

// exportRecord turns one key into the line that keeps its decision. skip
// is set (and the line empty) for a key lookups never read; notes list
// what the line does not carry exactly.
func (d *dirCmd) exportRecord(r redisstore.RawRecord) (line exportLine, notes []string, skip string) {
	// The ids the decision core looks up: a token's id is refused before
	// any lookup unless it is header-safe, and user ids are normalised to
	// canonical UUIDs when so configured.
	switch {
	case r.ID == "" || !authz.HeaderSafe(r.ID):
		return line, nil, "not an id lookups can ask for (empty, a control character or invalid UTF-8)"
	case d.norm != nil:
		canonical, ok := d.norm(r.ID)
		if !ok {
			return line, nil, "not a UUID: lookups never ask for it"
		}
		if canonical != r.ID {
			key, _ := d.store.Key(d.kind, canonical)
			return line, nil, fmt.Sprintf("not the canonical form of the id: lookups ask for %q instead", key)
		}
	}
	if _, err := userstore.CheckID(r.ID, d.norm); err != nil {
		return line, nil, fmt.Sprintf("lookups can ask for it, but import refuses it (%v)", err)
	}
	line.ID = r.ID
	if r.Type != "hash" {
		return line, []string{fmt.Sprintf("holds a %s, not a hash: exported as inactive, the decision lookups give it", r.Type)}, ""
	}
	switch active, ok := r.Fields["active"]; {
	case !ok:
		notes = append(notes, `no "active" field: exported as inactive, the decision lookups give it`)
	case active == "1":
		line.Active = true
	case active != "0":
		notes = append(notes, `"active" is neither "1" nor "0": exported as inactive, the decision lookups give it`)
	}
	for name, v := range r.Fields {
		switch {
		case name == "active":
		case !utf8.ValidString(name) || !utf8.ValidString(v):
			notes = append(notes, fmt.Sprintf("field %q left out: not valid UTF-8, which JSON cannot carry", name))
		case name == "email":
			line.Email = &v
		case name == "sub":
			if note := d.exportSub(r, v); note != "" {
				notes = append(notes, note)
			} else {
				line.Sub = v
			}
		default:
			if line.Extra == nil {
				line.Extra = map[string]string{}
			}
			line.Extra[name] = v
		}
	}
	slices.Sort(notes)
	return line, notes, ""
}

// exportSub says why a record's sub field cannot be exported ("" when it
// can): the line carries a sub only when lookups by it find the record
// (UserBySub), since import indexes every sub it writes.
func (d *dirCmd) exportSub(r redisstore.RawRecord, sub string) string {
	switch {
	case d.kind != userstore.User:
		return `field "sub" left out: apps have no sub, and import refuses it`
	case sub == "":
		return `empty "sub" field left out: no lookup asks for it`
	case userstore.CheckSub(sub) != nil:
		return `"sub" field left out: lookups never ask for such a sub, and import refuses it`
	case !r.SubIndexed:
		return fmt.Sprintf(`"sub" field left out: lookups by it do not find this user (its index key %q is missing or names another id)`, d.store.SubKey(sub))
	}
	return ""
}

// importFile checks the whole file, and the type of every key it would
// write, before writing anything. By default one rejected line means
// nothing is written; --skip-invalid writes the valid records anyway.
// Writes go in batches of importBatch records, each one script (per record
// on a Cluster) that checks the keys' types again, followed by one
// invalidation message per record written; the report counts exactly the
// records written.
func (d *dirCmd) importFile(ctx context.Context, path string, skipInvalid, dryRun bool) int {
	var r io.Reader
	name := path
	if path == "-" {
		r, name = os.Stdin, "stdin"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return fail(d.e, fmt.Errorf("%s import: %w", d.noun, err))
		}
		defer f.Close()
		r = f
	}
	imp, err := userstore.ReadImport(r, d.kind, d.norm)
	if err != nil {
		return fail(d.e, fmt.Errorf("%s import %s: %w", d.noun, name, err))
	}
	// A key of another type would not be written: reject its line now,
	// like any other, so that the default writes nothing.
	ids := make([]string, len(imp.Records))
	for i, rec := range imp.Records {
		ids[i] = rec.ID
	}
	types, err := d.store.WrongTyped(ctx, d.kind, ids)
	if err != nil {
		return fail(d.e, fmt.Errorf("%s import: %w", d.noun, err))
	}
	// Likewise a new sub that another user has, or whose index key holds
	// another type.
	conflicts := map[string]string{}
	if d.kind == userstore.User {
		if conflicts, err = d.store.SubConflicts(ctx, imp.Records); err != nil {
			return fail(d.e, fmt.Errorf("%s import: %w", d.noun, err))
		}
	}
	if len(types)+len(conflicts) > 0 {
		var recs []userstore.Entry
		var lines []int
		for i, rec := range imp.Records {
			if t, bad := types[rec.ID]; bad {
				key, _ := d.store.Key(d.kind, rec.ID)
				imp.Rejected = append(imp.Rejected, userstore.LineError{Line: imp.Lines[i],
					Err: fmt.Sprintf("key %q holds a %s, not a hash: not written (delete it first; lookups of it are denied)", key, t)})
				continue
			}
			if why, bad := conflicts[rec.ID]; bad {
				imp.Rejected = append(imp.Rejected, userstore.LineError{Line: imp.Lines[i], Err: why + ": not written"})
				continue
			}
			recs = append(recs, rec)
			lines = append(lines, imp.Lines[i])
		}
		imp.Records, imp.Lines = recs, lines
		slices.SortFunc(imp.Rejected, func(a, b userstore.LineError) int { return a.Line - b.Line })
	}
	for _, le := range imp.Rejected {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s:%d: %s\n", name, le.Line, le.Err)
	}
	rejected := len(imp.Rejected)
	report := func(written int, note string) {
		fmt.Fprintf(d.e.stdout, "%s: %d lines read (%s), %d written, %d rejected%s\n",
			name, imp.Read, imp.Format, written, rejected, note)
	}
	if rejected > 0 && !skipInvalid {
		report(0, "; nothing written (fix the lines, or use --skip-invalid)")
		return exitNotFound
	}
	if dryRun {
		report(0, "; dry run")
		if rejected > 0 {
			return exitNotFound
		}
		return exitOK
	}
	total := len(imp.Records)
	progress := total > progressOver
	written := 0
	began := time.Now()
	nextReport := total / 10
	for start := 0; start < total; start += importBatch {
		end := min(start+importBatch, total)
		res, err := d.session.PutBatch(ctx, d.kind, imp.Records[start:end])
		written += len(res.Written)
		if len(res.WrongType) > 0 {
			// Changed type since the check: another client is writing.
			for _, id := range res.WrongType {
				key, _ := d.store.Key(d.kind, id)
				fmt.Fprintf(d.e.stderr, "gatehouse: %s: %s %s: key %q holds another type than a hash: not written\n", name, d.kind, id, key)
			}
			rejected += len(res.WrongType)
		}
		for _, id := range append(res.SubTaken, res.SubWrongType...) {
			// Taken since the check: another client is writing.
			fmt.Fprintf(d.e.stderr, "gatehouse: %s: %s %s: its new sub belongs to another user, or its index key holds another type: not written\n", name, d.kind, id)
			rejected++
		}
		if err != nil {
			report(written, "")
			return fail(d.e, fmt.Errorf("%s import: batch of lines %d-%d: %w (every line before %d was handled as reported; "+
				"every record is whole or absent, and running the import again is safe)",
				d.noun, imp.Lines[start], imp.Lines[end-1], err, imp.Lines[start]))
		}
		if progress && (end >= nextReport || end == total) {
			fmt.Fprintf(d.e.stderr, "gatehouse: imported %d/%d %s (%s)\n", end, total, d.noun, time.Since(began).Round(time.Millisecond))
			nextReport = end + total/10
		}
	}
	report(written, "")
	code := exitOK
	if rejected > 0 {
		code = exitNotFound
	}
	return d.waitReplicas(ctx, code)
}
