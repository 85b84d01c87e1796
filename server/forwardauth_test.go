package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestForwardAuthListener: the same decision over HTTP, on its own port, and
// never the ops endpoints there.
func TestForwardAuthListener(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.Routes = "meet"
	r := start(t, cfg, Options{})
	addr := r.srv.HTTPAddr()
	if addr == nil {
		t.Fatal("forward-auth listener not bound")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	do := func(t *testing.T, method, path, auth string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr.String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}

	t.Run("allow over http_service", func(t *testing.T) {
		// Outside the meet table's /external-api/ prefix: authentication only.
		resp, body := do(t, "GET", "/check/api/v1.0/users/me/", "Bearer "+token(t, activeUser))
		if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("X-Auth-User-Id") != activeUser {
			t.Fatalf("got %d %q user %q, want 200, empty body, the user id", resp.StatusCode, body, resp.Header.Get("X-Auth-User-Id"))
		}
	})
	t.Run("deny has the gRPC path's body and challenge", func(t *testing.T) {
		resp, body := do(t, "GET", "/check/external-api/v1.0/rooms/", "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" ||
			body != `{"detail":"Authentication credentials were not provided."}` {
			t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if id := resp.Header.Get("X-Gatehouse-Decision-Id"); len(id) != 32 {
			t.Fatalf("deny decision id %q, want 32 hex characters", id)
		}
	})
	t.Run("public route", func(t *testing.T) {
		resp, _ := do(t, "POST", "/check/external-api/v1.0/application/token/", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("public token endpoint over HTTP: %d", resp.StatusCode)
		}
	})
	t.Run("unnamed path under /external-api/ is an unknown action", func(t *testing.T) {
		resp, body := do(t, "GET", "/check/external-api/v1.0/other/", "Bearer "+token(t, activeUser))
		if resp.StatusCode != http.StatusForbidden || body != `{"detail":"Insufficient permissions. Unknown action."}` {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
	// net/http answers "OPTIONS *" itself with a 200 unless told not to; on
	// this port every request must get a decision.
	t.Run("OPTIONS * is denied", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req := "OPTIONS * HTTP/1.1\r\nHost: gatehouse\r\nX-Original-Method: GET\r\n" +
			"X-Original-URI: /external-api/v1.0/application/token/\r\nConnection: close\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden || string(body) != `{"detail":"Insufficient permissions."}` {
			t.Fatalf("OPTIONS * answered %d %q, want the 403 of a refused check", resp.StatusCode, body)
		}
	})
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		t.Run("no ops endpoint "+p, func(t *testing.T) {
			resp, body := do(t, "GET", p, "")
			if resp.StatusCode == http.StatusOK || strings.Contains(body, "ok") {
				t.Fatalf("%s answered %d %q on the forward-auth port", p, resp.StatusCode, body)
			}
		})
	}

	t.Run("closed after shutdown", func(t *testing.T) {
		if err := r.stop(t); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			t.Fatal("forward-auth port still accepts connections after shutdown")
		}
	})
}

func TestForwardAuthDisabled(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.HTTPAddr = ""
	s, err := New(context.Background(), cfg.Config, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeAll()
	if s.HTTPAddr() != nil {
		t.Fatalf("forward-auth bound on %v with GATEHOUSE_HTTP_ADDR empty", s.HTTPAddr())
	}
}

// TestLogRateSetting: at info level, a deny over either listener is logged
// with its decision id and an allow is not; GATEHOUSE_LOG_RATE=0 silences
// decision lines on both.
func TestLogRateSetting(t *testing.T) {
	for _, rate := range []int{DefaultConfig().LogRate, 0} {
		t.Run(fmt.Sprintf("rate=%d", rate), func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.UsersFile = usersFile(t)
			cfg.LogLevel = slog.LevelInfo
			cfg.LogRate = rate
			r := start(t, cfg, Options{})

			if resp := r.check(t, "Bearer "+token(t, activeUser)); resp.GetStatus().GetCode() != 0 {
				t.Fatalf("valid token refused: %v", resp.GetStatus())
			}
			if resp := r.check(t, "Bearer forged"); resp.GetStatus().GetCode() == 0 {
				t.Fatal("forged token allowed over gRPC")
			}
			client := &http.Client{Timeout: 5 * time.Second}
			req, err := http.NewRequest("GET", "http://"+r.srv.HTTPAddr().String()+"/check/rooms", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer forged")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("forged token over HTTP: %d", resp.StatusCode)
			}

			seen := map[string]int{}
			for _, l := range r.logs.Lines(t) {
				msg, _ := l["msg"].(string)
				if !strings.HasSuffix(msg, " decision") {
					continue
				}
				seen[msg]++
				if l["result"] != "deny" || l["level"] != "INFO" || l["decision_id"] == "" || l["decision_id"] == nil {
					t.Errorf("decision line at info: %v", l)
				}
			}
			want := map[string]int{"ext_authz decision": 1, "forward-auth decision": 1}
			if rate == 0 {
				want = map[string]int{}
			}
			if !maps.Equal(seen, want) {
				t.Fatalf("decision lines %v, want %v:\n%s", seen, want, r.logs.String())
			}
		})
	}
}
