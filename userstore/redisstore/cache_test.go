package redisstore

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

func TestOriginCache(t *testing.T) {
	srv, client, ctx := setup(t)
	raw := srv.Client()
	s := New(client, relaxed)
	c := s.OriginCache()

	get := func(t *testing.T, kind userstore.Kind, id string) (userstore.Status, bool) {
		t.Helper()
		st, found, err := c.Get(ctx, kind, id)
		if err != nil {
			t.Fatalf("Get(%s, %q): %v", kind, id, err)
		}
		return st, found
	}

	t.Run("answers with a TTL", func(t *testing.T) {
		for _, tc := range []struct {
			id     string
			st     userstore.Status
			ttl    time.Duration
			fields map[string]string
		}{
			{"on", userstore.Active, 5 * time.Minute, map[string]string{"active": "1", "origin": "found"}},
			{"off", userstore.Inactive, 30 * time.Second, map[string]string{"active": "0", "origin": "found"}},
			{"nobody", userstore.NotFound, 30 * time.Second, map[string]string{"active": "0", "origin": "absent"}},
		} {
			if err := c.Set(ctx, userstore.User, tc.id, tc.st, tc.ttl); err != nil {
				t.Fatal(err)
			}
			key := "gatehouse:user:" + tc.id
			if got := raw.HGetAll(ctx, key).Val(); !maps.Equal(got, tc.fields) {
				t.Errorf("%s: hash %v, want %v", tc.id, got, tc.fields)
			}
			if ttl := raw.PTTL(ctx, key).Val(); ttl <= 0 || ttl > tc.ttl {
				t.Errorf("%s: TTL %s, want in (0, %s]", tc.id, ttl, tc.ttl)
			}
			if st, found := get(t, userstore.User, tc.id); !found || st != tc.st {
				t.Errorf("%s: Get = %s, %v; want %s, found", tc.id, st, found, tc.st)
			}
		}
		// What a lookup without an origin makes of them is what it always
		// did: "1" active, "0" refused (a cached NotFound reads Inactive).
		wantStatus(t, s, ctx, userstore.User, "on", userstore.Active)
		wantStatus(t, s, ctx, userstore.User, "off", userstore.Inactive)
		wantStatus(t, s, ctx, userstore.User, "nobody", userstore.Inactive)
	})

	t.Run("records not written from an origin are misses", func(t *testing.T) {
		// A record of the days when Redis was the directory, active
		// there: it must not shadow the origin.
		if err := s.Put(ctx, userstore.User, userstore.Record{ID: "legacy", Active: true, Email: "l@example.org"}); err != nil {
			t.Fatal(err)
		}
		if st, found := get(t, userstore.User, "legacy"); found {
			t.Fatalf("a record without the origin mark served as %s", st)
		}
		if _, found := get(t, userstore.User, "absent"); found {
			t.Fatal("an absent key found")
		}
		// The origin's answer replaces it whole, email included.
		if err := c.Set(ctx, userstore.User, "legacy", userstore.Inactive, time.Minute); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"active": "0", "origin": "found"}
		if got := raw.HGetAll(ctx, "gatehouse:user:legacy").Val(); !maps.Equal(got, want) {
			t.Fatalf("hash %v, want %v", got, want)
		}
	})

	t.Run("unreadable entries", func(t *testing.T) {
		raw.Set(ctx, "gatehouse:app:string", "1", 0)
		raw.HSet(ctx, "gatehouse:app:odd", "active", "1", "origin", "maybe")
		raw.HSet(ctx, "gatehouse:app:half", "active", "yes", "origin", "found")
		for _, id := range []string{"string", "odd", "half"} {
			st, found, err := c.Get(ctx, userstore.App, id)
			if !errors.Is(err, userstore.ErrInvalidRecord) || found || st != userstore.NotFound {
				t.Errorf("%s: %s, %v, %v; want an invalid-record error", id, st, found, err)
			}
		}
		// A key of another type is left alone.
		if err := c.Set(ctx, userstore.App, "string", userstore.Active, time.Minute); !errors.Is(err, ErrWrongType) {
			t.Fatalf("Set over a string: %v", err)
		}
		if v := raw.Get(ctx, "gatehouse:app:string").Val(); v != "1" {
			t.Fatalf("string key changed to %q", v)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := c.Set(ctx, userstore.App, "gone", userstore.Active, time.Minute); err != nil {
			t.Fatal(err)
		}
		for range 2 { // absent the second time: not an error
			if err := c.Delete(ctx, userstore.App, "gone"); err != nil {
				t.Fatal(err)
			}
		}
		if n := raw.Exists(ctx, "gatehouse:app:gone").Val(); n != 0 {
			t.Fatal("not deleted")
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		if err := c.Set(ctx, userstore.User, "x", userstore.Active, 0); err == nil {
			t.Error("zero TTL accepted")
		}
		if err := c.Set(ctx, userstore.User, "", userstore.Active, time.Minute); err == nil {
			t.Error("empty id accepted")
		}
		if _, found := get(t, userstore.User, ""); found {
			t.Error("empty id found")
		}
	})

	t.Run("Redis down", func(t *testing.T) {
		srv.Kill()
		c := New(client, Options{Timeout: 300 * time.Millisecond}).OriginCache()
		if _, _, err := c.Get(ctx, userstore.User, "on"); !errors.Is(err, userstore.ErrUnavailable) {
			t.Errorf("Get: %v", err)
		}
		if err := c.Set(ctx, userstore.User, "on", userstore.Active, time.Minute); !errors.Is(err, userstore.ErrUnavailable) {
			t.Errorf("Set: %v", err)
		}
		if err := c.Delete(ctx, userstore.User, "on"); !errors.Is(err, userstore.ErrUnavailable) {
			t.Errorf("Delete: %v", err)
		}
	})
}
