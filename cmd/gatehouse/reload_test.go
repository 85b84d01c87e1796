package main

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// TestServeReloadsOnSIGHUP: a routes file broken while serving is refused
// (logged once, the previous table serves), and SIGHUP makes serve check
// the files again at once: the refusal is logged a second time.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	const user = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	routes := testkit.WriteFile(t, "routes.yaml", "routes:\n  - prefix: /open/\n    public: true\n")
	env := baseEnv(
		"GATEHOUSE_JWT_SECRET=sighup-test-secret-0123456789abcdef",
		"GATEHOUSE_USERS_FILE="+testkit.WriteFile(t, "users.yaml", "- {id: "+user+", active: true}\n"),
		"GATEHOUSE_ROUTES="+routes,
		"GATEHOUSE_GRPC_ADDR=127.0.0.1:0",
		"GATEHOUSE_OPS_ADDR=127.0.0.1:0",
		"GATEHOUSE_LOG_FORMAT=text",
	)
	s := startServe(t, env)
	s.waitFor(t, s.stderr, regexp.MustCompile(`msg=listening `))

	if err := os.WriteFile(routes, []byte("routes:\n  - prefix: /open/\n    public: maybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := regexp.MustCompile(`msg="configuration reload refused; the previous version stays in use" what=routes`)
	s.waitFor(t, s.stderr, refused)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, s.stderr, regexp.MustCompile(`msg="reload requested"`))
	deadline := time.Now().Add(waitBound)
	for len(refused.FindAllString(s.stderr.String(), -1)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not retry the refused routes file:\n%s", s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := s.terminate(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM, want 0", code)
	}
	if strings.Contains(s.stderr.String(), "sighup-test-secret") {
		t.Error("the secret appears in the logs")
	}
}
