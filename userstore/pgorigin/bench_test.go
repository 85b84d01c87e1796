package pgorigin

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// BenchmarkLookup is one lookup of an active user through the pool, over
// loopback TCP to a real PostgreSQL.
func BenchmarkLookup(b *testing.B) {
	f := startMeet(b)
	o := f.open(b, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if got, err := o.Lookup(ctx, userstore.User, activeUser); err != nil || got != userstore.Active {
			b.Fatalf("Lookup = %v, %v", got, err)
		}
	}
}

// BenchmarkLookupParallel is the same with as many goroutines as
// GOMAXPROCS sharing the default pool.
func BenchmarkLookupParallel(b *testing.B) {
	f := startMeet(b)
	o := f.open(b, Options{})
	b.ReportAllocs()
	b.ResetTimer() // not the server's start
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if got, err := o.Lookup(ctx, userstore.User, activeUser); err != nil || got != userstore.Active {
				b.Errorf("Lookup = %v, %v", got, err)
				return
			}
		}
	})
}

// BenchmarkNotify is the revocation path: an UPDATE of is_active committed
// on an open connection, the trigger's NOTIFY, and Listen's callback. ns/op
// is from sending the UPDATE to the callback; "notify-ns/op" from the
// UPDATE's commit returning to the callback.
func BenchmarkNotify(b *testing.B) {
	f := startMeet(b)
	sql, err := TriggerSQL(TriggerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	f.pg.Exec(b, sql)
	o := f.open(b, Options{Logger: slog.New(slog.DiscardHandler)})
	n := f.listen(b, o)
	n.waitReset(b, 30*time.Second)

	ctx := context.Background()
	writer, err := pgx.Connect(ctx, f.pg.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close(ctx)
	var afterCommit time.Duration
	active := false
	for b.Loop() {
		if _, err := writer.Exec(ctx, "UPDATE meet_user SET is_active = $1 WHERE id = $2", active, activeUser); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		if got := n.waitChange(b, 10*time.Second); got != "user:"+activeUser {
			b.Fatalf("change = %q", got)
		}
		afterCommit += time.Since(committed)
		active = !active
	}
	b.ReportMetric(float64(afterCommit.Nanoseconds())/float64(b.N), "notify-ns/op")
}
