package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/gatehouse-authz/gatehouse/userstore/pgorigin"
)

// runDirectoryCmd is "gatehouse directory": what the directory of record
// needs from its operators. Today one subcommand, "sql".
func runDirectoryCmd(_ context.Context, e env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		w := e.stderr
		code := exitUsage
		if len(args) > 0 {
			w, code = e.stdout, exitOK
		}
		directoryCmdUsage(w)
		return code
	}
	if args[0] != "sql" {
		return fail(e, fmt.Errorf("directory: unknown command %q (sql)", args[0]))
	}
	fs := flag.NewFlagSet("gatehouse directory sql", flag.ContinueOnError)
	legacy := fs.Bool("legacy-app-column", false, "Meet before March 2026: the application's flag is the column \"active\", not \"is_active\"")
	if code, ok := parseFlags(e, fs, args[1:]); !ok {
		return code
	}
	opts := pgorigin.TriggerOptions{}
	if *legacy {
		opts.AppActiveColumn = "active"
	}
	sql, err := pgorigin.TriggerSQL(opts)
	if err != nil {
		return fail(e, err)
	}
	if _, err := io.WriteString(e.stdout, sql); err != nil {
		return fail(e, err)
	}
	return exitOK
}

func directoryCmdUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: gatehouse directory sql [--legacy-app-column]

Print the SQL that installs, on Meet's meet_user and meet_application tables,
the triggers notifying gatehouse (pg_notify on channel %s, payload
"user:<id>" or "app:<client_id>") when a record's active flag changes or the
record is deleted: with GATEHOUSE_DIRECTORY_ORIGIN set to Meet's database,
every replica then refuses a deactivated user within a second instead of
after its cache TTLs. Run it once as the owner of the tables, for example

  gatehouse directory sql | psql "$MEET_DATABASE_URL"

It can be run again (it replaces what it installed). gatehouse's own role
needs nothing more than SELECT on the two columns of each table.
`, pgorigin.Channel)
}
