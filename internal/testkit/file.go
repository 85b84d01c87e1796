package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes content to name in a fresh tb.TempDir() (mode 0600, as
// secrets are) and returns the file's path, for code that reads a path (users
// files, secret files, routes files). It fails the test on error.
func WriteFile(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatalf("testkit: write %s: %v", name, err)
	}
	return p
}
