package server

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

const (
	routesOpen  = "routes:\n  - prefix: /open/\n    public: true\n"
	routesOther = "routes:\n  - prefix: /other/\n    public: true\n"
	// routesBroken fails on its third line: the whole file is refused.
	routesBroken = "routes:\n  - prefix: /other/\n    public: maybe\n"
)

// pollUntil polls cond every few milliseconds, within waitBound, and
// returns how long it took: the latency figures the tests log.
func pollUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > waitBound {
			t.Fatalf("%s: not within %s", what, waitBound)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// metricValue returns the value of the sample of /metrics starting with
// series (name and labels as printed), or -1 when there is none.
func metricValue(t *testing.T, r *running, series string) float64 {
	t.Helper()
	_, body := r.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func public(t *testing.T, r *running, path string) bool {
	t.Helper()
	resp := r.checkRequest(t, "GET", path, "", nil)
	return codes.Code(resp.GetStatus().GetCode()) == codes.OK
}

// TestRoutesFileReload: a broken routes file written over a good one leaves
// the good one serving, logs one error, and says so in the metrics and
// /readyz?verbose (still ready); the next good version is picked up without
// a restart.
func TestRoutesFileReload(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.Routes = filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(cfg.Routes, []byte(routesOpen), 0o600); err != nil {
		t.Fatal(err)
	}
	// A short backstop interval: the periodic checks must not log the
	// refused file again.
	r := start(t, cfg, Options{reloadCheckInterval: 50 * time.Millisecond})
	if !public(t, r, "/open/x") || public(t, r, "/other/x") {
		t.Fatal("the first routes file is not the one in use")
	}
	_, ready := r.get(t, "/readyz?verbose")
	version := regexp.MustCompile(`\[\+\]config routes version ([0-9a-f]{16}) `).FindStringSubmatch(ready)
	if version == nil {
		t.Fatalf("/readyz?verbose has no routes version: %q", ready)
	}

	// Written in place (truncate, then write), as an editor without
	// atomic saves does.
	if err := os.WriteFile(cfg.Routes, []byte(routesBroken), 0o600); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the broken file refused", func() bool {
		return strings.Contains(r.logs.String(), "configuration reload refused")
	})
	if !public(t, r, "/open/x") || public(t, r, "/other/x") {
		t.Fatal("a broken routes file changed the routes in use")
	}
	code, body := r.get(t, "/readyz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "[-]config routes version "+version[1]) ||
		!strings.Contains(body, "routes.yaml:3") {
		t.Errorf("/readyz?verbose after a refused reload = %d %q; want ready, the version in use and the error", code, body)
	}
	if got := metricValue(t, r, `gatehouse_config_reloads_total{result="failure",what="routes"}`); got != 1 {
		t.Errorf("failure count %v, want 1", got)
	}
	if got := metricValue(t, r, `gatehouse_config_last_reload_successful{what="routes"}`); got != 0 {
		t.Errorf("last reload successful %v, want 0", got)
	}
	// Several periodic checks later, still one error line.
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(r.logs.String(), "configuration reload refused"); n != 1 {
		t.Errorf("the refused file was logged %d times, want once", n)
	}

	// SIGHUP (Reload) retries it, and logs again: the operator asked.
	r.srv.Reload()
	pollUntil(t, "the forced retry", func() bool {
		return strings.Count(r.logs.String(), "configuration reload refused") == 2
	})

	written := time.Now()
	replaceFile(t, cfg.Routes, []byte(routesOther))
	pollUntil(t, "the good file picked up", func() bool { return public(t, r, "/other/x") })
	t.Logf("routes reload latency (write to the first check decided by the new table; here the 50ms backstop may win over the watch): %s",
		time.Since(written).Round(time.Millisecond))
	if public(t, r, "/open/x") {
		t.Error("the new table is mixed with the old one")
	}
	if got := metricValue(t, r, `gatehouse_config_reloads_total{result="success",what="routes"}`); got != 1 {
		t.Errorf("success count %v, want 1", got)
	}
	if got := metricValue(t, r, `gatehouse_config_last_reload_successful{what="routes"}`); got != 1 {
		t.Errorf("last reload successful %v, want 1", got)
	}
	if _, body := r.get(t, "/readyz?verbose"); strings.Contains(body, "[-]config") || strings.Contains(body, version[1]) {
		t.Errorf("/readyz?verbose after the good reload: %q", body)
	}
}

// kubeDir lays files out as the kubelet mounts a Secret or ConfigMap:
// dir/name -> ..data/name, ..data -> ..<timestamp>/, and swap replaces
// the ..data symlink atomically, as an update does.
type kubeDir struct {
	t   *testing.T
	dir string
	gen int
}

func newKubeDir(t *testing.T, files map[string]string) *kubeDir {
	k := &kubeDir{t: t, dir: t.TempDir()}
	k.swap(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(k.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func (k *kubeDir) path(name string) string { return filepath.Join(k.dir, name) }

func (k *kubeDir) swap(files map[string]string) {
	k.t.Helper()
	k.gen++
	ts := "..2026_01_01_00_00_0" + strconv.Itoa(k.gen)
	if err := os.Mkdir(filepath.Join(k.dir, ts), 0o755); err != nil {
		k.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(k.dir, ts, name), []byte(content), 0o644); err != nil {
			k.t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(k.dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(k.dir, "..data_tmp")); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(k.dir, "..data_tmp"), filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(k.dir, old)); err != nil {
			k.t.Fatal(err)
		}
	}
}

// TestUsersFileReloadKubernetes: a users file mounted from a Secret is
// reloaded when the kubelet swaps the ..data symlink (no event names the
// file itself); a version with one bad record is refused whole.
func TestUsersFileReloadKubernetes(t *testing.T) {
	active := `[{"id":"` + activeUser + `","active":true}]`
	k := newKubeDir(t, map[string]string{"users.json": active})
	cfg := baseConfig(t)
	cfg.UsersFile = k.path("users.json")
	// No periodic check within the test: only the watch can explain a
	// reload.
	r := start(t, cfg, Options{reloadCheckInterval: time.Hour})
	bearer := "Bearer " + token(t, activeUser)
	if !allowed(r.check(t, bearer)) {
		t.Fatal("the active user is not allowed")
	}

	written := time.Now()
	k.swap(map[string]string{"users.json": `[{"id":"` + activeUser + `","active":false}]`})
	pollUntil(t, "the disabled user refused", func() bool { return !allowed(r.check(t, bearer)) })
	t.Logf("users file reload latency through a ..data swap: %s", time.Since(written).Round(time.Millisecond))

	// One record without "active": the whole file is refused, the user
	// stays disabled, none of the file's other records is taken.
	k.swap(map[string]string{"users.json": `[{"id":"` + activeUser + `","active":true},{"id":"` + inactiveUser + `"}]`})
	pollUntil(t, "the bad file refused", func() bool {
		return strings.Contains(r.logs.String(), "configuration reload refused")
	})
	if allowed(r.check(t, bearer)) {
		t.Fatal("a refused users file was half applied")
	}
	if got := metricValue(t, r, `gatehouse_config_reloads_total{result="failure",what="users"}`); got != 1 {
		t.Errorf("failure count %v, want 1", got)
	}
}
