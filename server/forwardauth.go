package server

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz/forwardauth"
)

// forwardAuthServer returns the HTTP forward-auth server for d. The handler
// is the server's own Handler, not mounted under a ServeMux: a mux cleans
// paths and redirects, so "/check/../healthz" would stop being a check, and
// the ops endpoints must never be reachable on this port. net/http's own
// answer to "OPTIONS *" (a 200 that no decision made) is turned off, so that
// the handler denies it like any request that is not a check.
func forwardAuthServer(cfg Config, d forwardauth.Decider, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler: forwardauth.New(d, forwardauth.Options{
			PathPrefix:     cfg.HTTPPathPrefix,
			Realm:          cfg.Realm,
			UserIDHeader:   cfg.HeaderUserID,
			ClientIDHeader: cfg.HeaderClientID,
			ScopeHeader:    cfg.HeaderScope,
			Logger:         logger,
			// Below debug, decision lines share a per-second budget.
			LogLinesPerSecond: zeroMeansNone(cfg.LogRate),
		}),
		// Proxies keep connections to an auth service open and send small
		// requests; the bounds stop slow clients from holding goroutines.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Every request, "OPTIONS *" included, gets a decision.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
