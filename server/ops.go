package server

import (
	"fmt"
	"net/http"
	"strings"
)

// opsHandler serves the ops endpoints:
//
//   - /healthz: 200 while the process lives (liveness);
//   - /readyz: 200 while serving, 503 before Serve and from the start of
//     shutdown (readiness); with ?verbose, a plain-text report of each check;
//   - /metrics: the Prometheus metrics (never on the gRPC port).
//
// The directory's reachability is reported by ?verbose but does not make
// /readyz fail: every replica shares the same Redis, so failing readiness on
// a Redis outage would take all of them out of rotation at once, and the
// proxy would then apply its own failure policy instead of gatehouse's 503.
// Nor does a refused configuration reload: the previous version serves.
func (s *Server) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	metrics := s.metrics.Handler()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		ready := s.serving.Load()
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		if !r.URL.Query().Has("verbose") {
			if ready {
				writeText(w, code, "ok\n")
			} else {
				writeText(w, code, "not ready\n")
			}
			return
		}
		var b strings.Builder
		mark := func(ok bool) string {
			if ok {
				return "[+]"
			}
			return "[-]"
		}
		state := "serving"
		if !ready {
			state = "not serving"
		}
		fmt.Fprintf(&b, "%sgrpc %s\n", mark(ready), state)
		dirOK, dirText := s.dir.status()
		fmt.Fprintf(&b, "%sdirectory %s (informational)\n", mark(dirOK), dirText)
		// The reloaded files: the version in use, and a change refused
		// (the previous version keeps serving, so readiness holds).
		for _, line := range s.reloads.status() {
			b.WriteString(line + "\n")
		}
		if ready {
			b.WriteString("readyz check passed\n")
		} else {
			b.WriteString("readyz check failed\n")
		}
		writeText(w, code, b.String())
	})
	return mux
}

// readOnly allows GET and HEAD, answering 405 otherwise.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeText(w, http.StatusMethodNotAllowed, "method not allowed\n")
	return false
}

func writeText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
