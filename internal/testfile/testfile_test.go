package testfile

import (
	"os"
	"testing"
)

func TestWrite(t *testing.T) {
	p := Write(t, "users.json", `[{"id":"a"}]`)
	b, err := os.ReadFile(p)
	if err != nil || string(b) != `[{"id":"a"}]` {
		t.Fatalf("read back %q, %v", b, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
