// Command gatehouse is an Envoy ext_authz service that verifies La Suite
// Meet's application-delegation tokens against a user directory.
//
//	gatehouse serve [--dev]   run the ext_authz gRPC server
//	gatehouse token ...       issue a delegation token (for tests and operators)
//	gatehouse check ...       send one CheckRequest and print the decision
//	gatehouse users ...       manage the users of the Redis directory
//	gatehouse apps ...        manage the applications of the Redis directory
//	gatehouse version         print the version
//
// The command is thin: it parses arguments and calls the packages that do
// the work (internal/config, server, userstore/redisstore, authz).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second Ctrl-C ends a slow graceful stop at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv, environ: os.Environ})
	stop()
	os.Exit(code)
}
