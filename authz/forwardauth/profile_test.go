package forwardauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/profiletest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proxytest"
)

// TestProfileRows runs every row of both Meet profiles through the
// forward-auth handler over real HTTP, in each way a proxy describes the
// original request: Envoy http_service (the check's own method and path),
// Traefik and Caddy (X-Forwarded-*), nginx (X-Original-*). nginx turns any
// status but 401 and 403 into a 500, so there a 405 is sent as a 403 with
// the same detail and no Allow header.
func TestProfileRows(t *testing.T) {
	now := time.Now()
	for _, p := range [...]authz.Profile{authz.Profile202510, authz.Profile202608} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			servers := map[profiletest.Setup]*httptest.Server{}
			for _, row := range profiletest.Rows() {
				srv, ok := servers[row.Setup]
				if !ok {
					a, err := authz.New(profiletest.Options(p, row.Setup, profiletest.Directory(), nil))
					if err != nil {
						t.Fatalf("authz.New: %v", err)
					}
					srv = httptest.NewServer(New(a, Options{}))
					t.Cleanup(srv.Close)
					servers[row.Setup] = srv
				}
				h, err := row.Token.Authorization(now)
				if err != nil {
					t.Fatal(err)
				}
				auth := http.Header{}
				if h != "" {
					auth.Set("Authorization", h)
				}
				method, path := row.MethodOf(), row.PathOf()
				for _, m := range []struct {
					name           string
					method, target string
					header         http.Header
				}{
					{"envoy", method, DefaultPathPrefix + path, auth},
					{"traefik", http.MethodGet, DefaultPathPrefix, merge(auth, traefikHeaders(method, path))},
					{"nginx", http.MethodGet, DefaultPathPrefix, merge(auth, nginxHeaders(method, path))},
				} {
					t.Run(m.name+"/"+row.Topic+"/"+row.Name, func(t *testing.T) {
						w := row.Want[p]
						if m.name == "nginx" && w.Status == http.StatusMethodNotAllowed {
							w.Status, w.Allow = http.StatusForbidden, ""
						}
						resp, body := do(t, srv.URL, m.method, m.target, m.header)
						checkRowResponse(t, m.method, resp, body, w)
					})
				}
			}
		})
	}
}

// checkRowResponse compares a check's answer with a row's.
func checkRowResponse(t *testing.T, method string, resp *http.Response, body []byte, w profiletest.Want) {
	t.Helper()
	if resp.StatusCode != w.Status {
		t.Fatalf("status %d (body %s), want %d", resp.StatusCode, body, w.Status)
	}
	if w.Status == http.StatusOK {
		for name, want := range map[string]string{
			"X-Auth-User-Id": profiletest.ActiveUser, "X-Auth-Client-Id": w.ClientID, "X-Auth-Scope": w.Scope,
		} {
			if got := resp.Header.Values(name); (want == "" && len(got) != 0) || (want != "" && (len(got) != 1 || got[0] != want)) {
				t.Errorf("%s %q, want %q", name, got, want)
			}
		}
		return
	}
	if method != http.MethodHead {
		if got := detail(t, body); got != w.Message {
			t.Fatalf("detail %q, want %q", got, w.Message)
		}
	}
	if got := resp.Header.Values("Allow"); (w.Allow == "" && len(got) != 0) || (w.Allow != "" && (len(got) != 1 || got[0] != w.Allow)) {
		t.Errorf("Allow %q, want %q", got, w.Allow)
	}
	if got := resp.Header.Get("Www-Authenticate"); (got != "") != (w.Status == http.StatusUnauthorized ||
		w.Reason == authz.ReasonNoScope || w.Reason == authz.ReasonMissingScope) {
		t.Errorf("WWW-Authenticate %q on a %d %s", got, w.Status, w.Reason)
	}
}

// TestMethodNotAllowedThroughRealProxies runs nginx and Caddy with their
// shipped examples in front of a 2026.08 gatehouse: a PUT on the rooms list
// never reaches the upstream; Caddy passes gatehouse's 405 and its Allow
// header on, nginx (which would turn a 405 into a 500) answers 403 with the
// same detail.
func TestMethodNotAllowedThroughRealProxies(t *testing.T) {
	for _, pk := range proxyKinds {
		t.Run(pk.name, func(t *testing.T) {
			t.Parallel()
			up := proxytest.StartUpstream(t)
			a, err := authz.New(profiletest.Options(authz.Profile202608, profiletest.Setup{}, profiletest.Directory(), nil))
			if err != nil {
				t.Fatal(err)
			}
			gh := httptest.NewServer(New(a, Options{}))
			t.Cleanup(gh.Close)
			p := pk.start(t, strings.TrimPrefix(gh.URL, "http://"), up.Addr())
			h, err := profiletest.Token{}.Authorization(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			wantStatus, wantAllow := http.StatusMethodNotAllowed, profiletest.AllowRooms
			if pk.name == "nginx" {
				wantStatus, wantAllow = http.StatusForbidden, ""
			}
			resp, body := do(t, p.URL(), "PUT", profiletest.RoomsPath, http.Header{"Authorization": {h}})
			if resp.StatusCode != wantStatus {
				t.Fatalf("status %d, want %d; body %s; proxy log: %s", resp.StatusCode, wantStatus, body, p.Log())
			}
			if got := detail(t, body); got != `Method "PUT" not allowed.` {
				t.Errorf("detail %q", got)
			}
			if got := resp.Header.Get("Allow"); got != wantAllow {
				t.Errorf("Allow %q, want %q", got, wantAllow)
			}
			if n := len(up.Requests()); n != 0 {
				t.Errorf("upstream got %d requests", n)
			}
			// The same token on a method the route serves goes through.
			resp, body = do(t, p.URL(), "GET", profiletest.RoomsPath, http.Header{"Authorization": {h}})
			if resp.StatusCode != http.StatusOK || len(up.Requests()) != 1 {
				t.Fatalf("GET: status %d, body %s; proxy log: %s", resp.StatusCode, body, p.Log())
			}
		})
	}
}
