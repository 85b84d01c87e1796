// Package testkit is gatehouse's test support, in one place. Nothing in it is
// part of the product: only _test.go files, the benchmarks (bench/) and the
// deployment checks (deploycheck/) import it.
//
// This package holds the small helpers that need nothing but the standard
// library, so that any package's in-package tests can use them without an
// import cycle:
//
//   - FreePort: an unused 127.0.0.1 port for a child process that must be
//     told its port;
//   - Clock: a settable clock for code that takes a func() time.Time;
//   - WriteFile: a file in t.TempDir() for code that reads a path;
//   - LogBuffer, NewLogger, NewLoggerAt: captured log/slog output, to assert
//     what is logged and what never is.
//
// The subpackages hold what needs more:
//
//   - proc: the one child-process launcher (output to a log file, readiness,
//     SIGTERM then SIGKILL, Pdeathsig), used by the starters below and by the
//     load and chaos drivers;
//   - redistest: real redis-server processes (standalone, TLS, Sentinel,
//     Cluster);
//   - proxytest: real nginx and Caddy in front of an echoing upstream;
//   - pgtest: a real PostgreSQL server;
//   - certtest: CAs, server and client certificates for TLS listeners;
//   - certtest: certificate authorities and certificates for TLS tests;
//   - tokentest: Meet-shaped delegation tokens (it imports authz, which the
//     helpers here must not, as authz's own tests use them).
package testkit
