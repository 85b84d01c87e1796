package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartRestart(t *testing.T) {
	s := Start(t)
	if strings.Contains(s.URLFor(Superuser, ""), s.Password()) {
		t.Fatal("URLFor with an empty password must leave the password out")
	}
	s.Exec(t, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
	query := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return 0, err
		}
		defer conn.Close(context.Background())
		var v int
		err = conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v)
		return v, err
	}
	if v, err := query(); err != nil || v != 42 {
		t.Fatalf("query = %d, %v; want 42", v, err)
	}

	// A wrong password is refused: the server really authenticates.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, s.URLFor(Superuser, "wrong")); err == nil {
		conn.Close(context.Background())
		t.Fatal("a wrong password was accepted")
	}

	port := s.Port()
	s.Stop()
	if _, err := query(); err == nil {
		t.Fatal("query succeeded with the server stopped")
	}
	s.Restart()
	if s.Port() != port {
		t.Fatalf("restart moved the server from port %d to %d", port, s.Port())
	}
	if v, err := query(); err != nil || v != 42 {
		t.Fatalf("after restart: query = %d, %v; want 42 (data kept)", v, err)
	}
}
