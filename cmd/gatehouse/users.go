package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/server"
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
)

// exitNotFound: the record does not exist (get, enable, disable, delete),
// or an import rejected lines.
const exitNotFound = 1

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
  put ID [--inactive] [--email E]   write a record (active unless --inactive)
  enable ID | disable ID            change an existing record (exit 1 if absent)
  delete ID                         remove a record (exit 1 if absent)
  get ID                            print the record as JSON (exit 1 if absent)
  import FILE [--skip-invalid] [--dry-run]
                                    JSON lines {"id","active","email"} or CSV with a
                                    header id,active[,email]; "-" reads stdin
  export                            print every record as JSON lines

Exit codes: 0 done, 1 not found (or rejected import lines), 2 usage, configuration
or Redis error. Redis settings are serve's (GATEHOUSE_REDIS_*, --redis-url, ...);
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
	var inactive, skipInvalid, dryRun bool
	var email string
	switch sub {
	case "put":
		fs.BoolVar(&inactive, "inactive", false, "write the record disabled")
		fs.StringVar(&email, "email", "", "optional `email` stored with the record")
	case "import":
		fs.BoolVar(&skipInvalid, "skip-invalid", false, "write the valid records even when some lines are rejected (default: write nothing then)")
		fs.BoolVar(&dryRun, "dry-run", false, "check the file and report, write nothing")
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
	if err := cfg.ValidateRedis(); err != nil {
		return fail(e, err)
	}
	if _, err := authz.ParseIDFormat(cfg.UserIDFormat); err != nil || cfg.UserIDFormat == "" {
		return fail(e, fmt.Errorf("GATEHOUSE_USER_ID_FORMAT: unknown format %q (want uuid or opaque)", cfg.UserIDFormat))
	}
	client, _, err := server.NewRedisClient(cfg)
	if err != nil {
		return fail(e, err)
	}
	defer client.Close()
	d := &dirCmd{
		e: e, kind: kind, noun: noun, cfg: cfg,
		store: redisstore.New(client, redisstore.Options{Prefix: cfg.RedisPrefix, Timeout: max(cfg.RedisTimeout, minCLITimeout)}),
	}
	if kind == userstore.User && cfg.IDFormat() == authz.IDFormatUUID {
		d.norm = authz.NormalizeUUID
	}
	switch sub {
	case "put":
		return d.put(ctx, pos[0], !inactive, email)
	case "enable", "disable":
		return d.setActive(ctx, pos[0], sub == "enable")
	case "delete":
		return d.delete(ctx, pos[0])
	case "get":
		return d.get(ctx, pos[0])
	case "import":
		return d.importFile(ctx, pos[0], skipInvalid, dryRun)
	default:
		return d.export(ctx)
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

func (d *dirCmd) put(ctx context.Context, raw string, active bool, email string) int {
	id, err := d.id(raw)
	if err != nil {
		return fail(d.e, err)
	}
	if err := userstore.CheckEmail(email); err != nil {
		return fail(d.e, fmt.Errorf("%s put: %w", d.noun, err))
	}
	if err := d.store.Put(ctx, d.kind, userstore.Record{ID: id, Active: active, Email: email}); err != nil {
		return fail(d.e, err)
	}
	fmt.Fprintf(d.e.stdout, "%s %s written (%s)\n", d.kind, id, activeWord(active))
	return exitOK
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
	found, err := d.store.SetActive(ctx, d.kind, id, active)
	if err != nil {
		return fail(d.e, err)
	}
	if !found {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s %s not found; nothing written (use put to create it)\n", d.kind, id)
		return exitNotFound
	}
	fmt.Fprintf(d.e.stdout, "%s %s %s\n", d.kind, id, map[bool]string{true: "enabled", false: "disabled"}[active])
	return exitOK
}

func (d *dirCmd) delete(ctx context.Context, raw string) int {
	id, err := d.id(raw)
	if err != nil {
		return fail(d.e, err)
	}
	existed, err := d.store.Remove(ctx, d.kind, id)
	if err != nil {
		return fail(d.e, err)
	}
	if !existed {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s %s not found\n", d.kind, id)
		return exitNotFound
	}
	fmt.Fprintf(d.e.stdout, "%s %s deleted\n", d.kind, id)
	return exitOK
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

func (d *dirCmd) export(ctx context.Context) int {
	w := bufio.NewWriterSize(d.e.stdout, 64<<10)
	enc := json.NewEncoder(w)
	n := 0
	err := d.store.Scan(ctx, d.kind, func(r userstore.Record) error {
		n++
		return enc.Encode(r)
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fail(d.e, fmt.Errorf("%s export after %d records: %w", d.noun, n, err))
	}
	fmt.Fprintf(d.e.stderr, "gatehouse: exported %d %s\n", n, d.noun)
	return exitOK
}

// importFile checks the whole file before writing anything. By default one
// rejected line means nothing is written; --skip-invalid writes the valid
// records anyway. Writes go in batches of importBatch records, each one
// MULTI/EXEC (per record on a Cluster), followed by one invalidation
// message per record.
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
	imp, err := userstore.ReadImport(r, d.norm)
	if err != nil {
		return fail(d.e, fmt.Errorf("%s import %s: %w", d.noun, name, err))
	}
	for _, le := range imp.Rejected {
		fmt.Fprintf(d.e.stderr, "gatehouse: %s:%d: %s\n", name, le.Line, le.Err)
	}
	report := func(written int, note string) {
		fmt.Fprintf(d.e.stdout, "%s: %d lines read (%s), %d written, %d rejected%s\n",
			name, imp.Read, imp.Format, written, len(imp.Rejected), note)
	}
	if len(imp.Rejected) > 0 && !skipInvalid {
		report(0, "; nothing written (fix the lines, or use --skip-invalid)")
		return exitNotFound
	}
	if dryRun {
		report(0, "; dry run")
		if len(imp.Rejected) > 0 {
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
		if err := d.store.PutBatch(ctx, d.kind, imp.Records[start:end]); err != nil {
			report(written, "")
			return fail(d.e, fmt.Errorf("%s import: batch of lines %d-%d: %w (records before line %d are written; "+
				"this batch is written whole or not at all, except that Redis does not roll back a batch when one record's key holds another type; "+
				"every record is whole or absent, and running the import again is safe)",
				d.noun, imp.Lines[start], imp.Lines[end-1], err, imp.Lines[start]))
		}
		written = end
		if progress && (written >= nextReport || written == total) {
			fmt.Fprintf(d.e.stderr, "gatehouse: imported %d/%d %s (%s)\n", written, total, d.noun, time.Since(began).Round(time.Millisecond))
			nextReport = written + total/10
		}
	}
	report(written, "")
	if len(imp.Rejected) > 0 {
		return exitNotFound
	}
	return exitOK
}
