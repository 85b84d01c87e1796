package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // check: a deny; serve: a failure after start-up
	exitUsage = 2 // usage or configuration error, or check could not ask
)

// env is what a command may touch of the outside world.
type env struct {
	stdout, stderr io.Writer
	lookup         config.LookupFunc
	// environ lists the environment as KEY=VALUE pairs (os.Environ), to
	// find GATEHOUSE_* variables no setting reads; nil: none.
	environ func() []string
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) int
}

func commands() []command {
	return []command{
		{"serve", "run the ext_authz gRPC server (--dev: no setup needed)", runServe},
		{"token", "issue a delegation token shaped like Meet's /token answer", runToken},
		{"check", "send one CheckRequest and print the decision (exit 0 allow, 1 deny, 2 error)", runCheck},
		{"users", "manage the users of the Redis directory (put, enable, disable, delete, get, import, export)", runUsers},
		{"apps", "manage the applications of the Redis directory (same commands as users)", runApps},
		{"directory", "print the SQL of the revocation trigger for Meet's database (directory sql)", runDirectoryCmd},
		{"version", "print the version", runVersion},
	}
}

// run dispatches args to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		return fail(e, fmt.Errorf("no command given (%s; see gatehouse help)", strings.Join(names, ", ")))
	}
	// go-redis prints its own pool errors ("failed to dial") as bare lines
	// on stderr unless given a logger, and it holds the logger in a
	// process-wide variable: route it through slog before any command can
	// create a Redis client ("users", "apps"). Its lines are at debug, below
	// this logger's level: those commands report a Redis failure themselves,
	// on one line. serve routes it again, to the logger it configures.
	redisstore.RouteLogs(slog.New(slog.NewJSONHandler(e.stderr, nil)))
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			for _, c := range commands() {
				if c.name == rest[0] {
					return c.run(ctx, e, []string{"-h"})
				}
			}
			return fail(e, fmt.Errorf("unknown command %q (see gatehouse help)", rest[0]))
		}
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, rest)
		}
	}
	return fail(e, fmt.Errorf("unknown command %q (see gatehouse help)", name))
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("gatehouse: Envoy ext_authz service for Meet application-delegation tokens\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  gatehouse %-8s %s\n", c.name, c.summary)
	}
	b.WriteString("  gatehouse help [command]\n\n")
	b.WriteString("Every setting is a flag with a GATEHOUSE_* environment variable; a flag beats the\n")
	b.WriteString("environment. \"gatehouse help serve\" lists them.\n")
	io.WriteString(w, b.String())
}

// fail prints one line, "gatehouse: <problem>", and returns exitUsage.
func fail(e env, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(e.stderr, "gatehouse: %s\n", msg)
	return exitUsage
}

// parseFlags parses a subcommand's flags; ok is false when the command should
// return code at once (help was printed, or the arguments were wrong).
func parseFlags(e env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(e.stdout)
	err := config.ParseFlags(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return fail(e, fmt.Errorf("%s: %w", strings.TrimPrefix(fs.Name(), "gatehouse "), err)), false
	}
	return 0, true
}

// warnUnknownVariables calls warn for every GATEHOUSE_* variable of the
// environment that no setting reads: a misspelt variable
// (GATEHOUSE_JWT_SECRT) would otherwise leave its setting at the default
// without a word.
func warnUnknownVariables(e env, warn func(config.UnknownVariable)) {
	if e.environ == nil {
		return
	}
	for _, v := range config.UnknownVariables(e.environ()) {
		warn(v)
	}
}

// warnUnknownVariablesOnStderr is warnUnknownVariables for the commands
// without a logger: one line each on stderr, which scripts do not parse.
func warnUnknownVariablesOnStderr(e env) {
	warnUnknownVariables(e, func(v config.UnknownVariable) {
		hint := ""
		if v.Suggestion != "" {
			hint = " (did you mean " + v.Suggestion + "?)"
		}
		fmt.Fprintf(e.stderr, "gatehouse: warning: %s is not a setting and is ignored%s\n", v.Name, hint)
	})
}
