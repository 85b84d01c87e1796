// Package testfile writes the files tests hand to code that reads a path
// (users files, secret files, routes files).
package testfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write writes content to name in a fresh t.TempDir() (mode 0600, as secrets
// are) and returns the file's path. It fails the test on error.
func Write(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatalf("testfile: %v", err)
	}
	return p
}
