package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/internal/telemetry"
	"github.com/gatehouse-authz/gatehouse/server"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// The demo directory of serve --dev: fixed, obviously fake ids, so that
// tokens and scripts written against them keep working across restarts.
const (
	devActiveUser   = "11111111-1111-4111-8111-111111111111"
	devInactiveUser = "22222222-2222-4222-8222-222222222222"
	devClientID     = "gatehouse-dev"
	devTokenTTL     = 12 * time.Hour
)

func runServe(ctx context.Context, e env, args []string) int {
	var out io.Writer = e.stdout
	cfg, err := config.Parse(args, e.lookup, out)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return fail(e, err)
	}
	var opts server.Options
	demo := false
	generated := false
	if cfg.Dev {
		if !cfg.HasSecret() {
			secret, err := randomSecret()
			if err != nil {
				return fail(e, err)
			}
			cfg.JWTSecret = config.Secret(secret)
			generated = true
		}
		if !cfg.UsesRedis() && cfg.UsersFile == "" && cfg.DirectoryOrigin == "" {
			opts.Directory = userstore.NewMemory([]userstore.Record{
				{ID: devActiveUser, Active: true, Email: "active@example.invalid"},
				{ID: devInactiveUser, Active: false, Email: "inactive@example.invalid"},
			}, nil)
			opts.DirectoryName = "demo users (in memory)"
			demo = true
		}
	}
	if err := cfg.Validate(); err != nil {
		return fail(e, err)
	}
	sc, err := cfg.ServerConfig()
	if err != nil {
		return fail(e, err)
	}

	logger := newLogger(cfg, e.stderr)
	// go-redis and OpenTelemetry log through process-wide hooks, from their
	// own goroutines: point them at this logger once, before the server
	// creates its Redis client and tracer provider, so that every line the
	// process writes is structured.
	redisstore.RouteLogs(logger)
	telemetry.RouteOTelErrors(logger)
	ver, rev := buildVersion()
	opts.Build = telemetry.BuildInfo{Version: ver, Commit: rev}
	srv, err := server.New(ctx, sc, logger, opts)
	if err != nil {
		// Only this line: a refused start is one line on stderr.
		return fail(e, config.SettingError(err))
	}
	logger.Info("starting gatehouse", "version", versionString(), "config", cfg)
	warnUnknownVariables(e, func(v config.UnknownVariable) {
		logger.Warn("unknown GATEHOUSE_ variable ignored", "variable", v.Name, "did_you_mean", v.Suggestion)
	})
	if cfg.Dev {
		logger.Warn("development mode: not for production", "random_secret", generated, "demo_users", demo)
	}
	if cfg.Dev {
		if err := printDevBanner(e.stdout, cfg, srv, demo); err != nil {
			logger.Warn("could not print the development banner", "error", err.Error())
		}
	}
	// SIGHUP reloads the routes file, the users file and the TLS files now
	// (they are also reloaded when they change, and checked periodically).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				srv.Reload()
			}
		}
	}()
	if err := srv.Serve(ctx); err != nil {
		logger.Error("server failed", "error", err.Error())
		fmt.Fprintf(e.stderr, "gatehouse: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return exitFail
	}
	return exitOK
}

// newLogger returns the slog logger cfg asks for, writing to w.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// randomSecret returns a 256-bit key, base64url-encoded so that it is
// printable should an operator ever need to reproduce it.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a development secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// printDevBanner prints where the dev server listens and, with the demo
// directory, a token for each demo user and the check commands using them.
// The secret itself is never printed.
func printDevBanner(w io.Writer, cfg config.Config, srv *server.Server, demo bool) error {
	var b strings.Builder
	addr := srv.GRPCAddr().String()
	b.WriteString("gatehouse is running in development mode (not for production).\n")
	fmt.Fprintf(&b, "  ext_authz gRPC: %s\n", addr)
	if a := srv.HTTPAddr(); a != nil {
		fmt.Fprintf(&b, "  forward-auth:   http://%s%s\n", a.String(), cfg.HTTPPathPrefix)
	}
	fmt.Fprintf(&b, "  readiness:      http://%s/readyz?verbose\n", srv.OpsAddr().String())
	if demo {
		jwt, err := cfg.JWT()
		if err != nil {
			return err
		}
		now := time.Now()
		active, err := authz.IssueToken(jwt, authz.TokenSpec{UserID: devActiveUser, ClientID: devClientID, TTL: devTokenTTL, Now: now})
		if err != nil {
			return err
		}
		inactive, err := authz.IssueToken(jwt, authz.TokenSpec{UserID: devInactiveUser, ClientID: devClientID, TTL: devTokenTTL, Now: now})
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  demo users:     %s (active), %s (inactive)\n", devActiveUser, devInactiveUser)
		fmt.Fprintf(&b, "  demo tokens expire in %d hours.\n\n", int(devTokenTTL/time.Hour))
		b.WriteString("An allowed request (active user):\n")
		fmt.Fprintf(&b, "  gatehouse check --addr %s --token %s\n", addr, active.AccessToken)
		b.WriteString("A denied request (inactive user):\n")
		fmt.Fprintf(&b, "  gatehouse check --addr %s --token %s\n", addr, inactive.AccessToken)
		b.WriteString("(From a source checkout, run them as: go run ./cmd/gatehouse check ...)\n")
		if a := srv.HTTPAddr(); a != nil {
			b.WriteString("The same over HTTP (Envoy http_service style):\n")
			fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' http://%s%s/v1/anything\n", active.AccessToken, a.String(), cfg.HTTPPathPrefix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
