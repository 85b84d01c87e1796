package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/pgtest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore/pgorigin"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Meet's two tables (what gatehouse reads, and a column it cannot), the
// least-privilege role, and gatehouse's trigger.
const meetSchema = `
CREATE TABLE meet_user (id uuid PRIMARY KEY, email text NOT NULL DEFAULT '', is_active boolean NOT NULL DEFAULT true);
CREATE TABLE meet_application (id serial PRIMARY KEY, client_id varchar(100) NOT NULL UNIQUE, is_active boolean NOT NULL DEFAULT true);
CREATE ROLE gatehouse LOGIN PASSWORD 'origin-password-never-printed';
GRANT SELECT (id, is_active) ON meet_user TO gatehouse;
GRANT SELECT (client_id, is_active) ON meet_application TO gatehouse;
INSERT INTO meet_user (id, is_active) VALUES ('` + activeUser + `', true), ('` + inactiveUser + `', false);
INSERT INTO meet_application (client_id) VALUES ('` + testClientID + `');
`

const originPassword = "origin-password-never-printed"

func startMeet(t *testing.T) *pgtest.Server {
	t.Helper()
	pg := pgtest.Start(t)
	pg.Exec(t, meetSchema)
	trigger, err := pgorigin.TriggerSQL(pgorigin.TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, trigger)
	return pg
}

func originConfig(t *testing.T, pg *pgtest.Server, rs *redistest.Server) testConfig {
	cfg := baseConfig(t)
	cfg.DirectoryOrigin = pg.URLFor("gatehouse", originPassword)
	if rs != nil {
		cfg.Redis = &redisstore.ClientConfig{URL: rs.URL()}
		cfg.RedisTimeout = 500 * time.Millisecond
	}
	// Only a notification can explain a change within the test.
	cfg.CacheTTL, cfg.CacheNegativeTTL = time.Hour, time.Hour
	cfg.RedisCacheTTL, cfg.RedisCacheNegativeTTL = time.Hour, time.Hour
	cfg.CheckApplications = true
	return cfg
}

// TestOriginEndToEnd: two servers (replicas) in front of Meet's PostgreSQL
// and one Redis. An active user is allowed, an inactive or unknown one
// refused; deactivating the user in PostgreSQL gets them refused by both
// replicas within a second, through the trigger; /readyz?verbose reports the
// origin and Redis.
func TestOriginEndToEnd(t *testing.T) {
	pg := startMeet(t)
	rs := redistest.Start(t)
	cfg := originConfig(t, pg, rs)
	a := start(t, cfg, Options{})
	b := start(t, cfg, Options{})
	for _, r := range []*running{a, b} {
		eventually(t, "the change feed is established", func() bool {
			_, body := r.get(t, "/readyz?verbose")
			return strings.Contains(body, "change notifications (LISTEN gatehouse_invalidate): established")
		})
	}

	tok := "Bearer " + token(t, activeUser)
	for _, r := range []*running{a, b} {
		if resp := r.check(t, tok); !allowed(resp) {
			t.Fatalf("active user denied: %s", reason(t, resp))
		}
		// Refused, and decided (not a 503).
		if resp := r.check(t, "Bearer "+token(t, inactiveUser)); allowed(resp) || httpStatus(resp) == http.StatusServiceUnavailable {
			t.Fatalf("inactive user: %v", resp)
		}
		if resp := r.check(t, "Bearer "+token(t, "0b6f3c1e-6a43-4c55-9f0e-3f4f1b7d1aff")); allowed(resp) || httpStatus(resp) == http.StatusServiceUnavailable {
			t.Fatalf("unknown user: %v", resp)
		}
	}
	// The origin's answers are in Redis, with a TTL.
	ctx := context.Background()
	if ttl := rs.Client().PTTL(ctx, "gatehouse:user:"+activeUser).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("Redis TTL of the active user: %s", ttl)
	}

	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	start := time.Now()
	if _, err := conn.Exec(ctx, "UPDATE meet_user SET is_active = false WHERE id = $1", activeUser); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*running{a, b} {
		for allowed(r.check(t, tok)) {
			if time.Since(start) > time.Second {
				t.Fatal("a replica still allows the user 1 s after the deactivation was committed")
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("deactivation refused by both replicas %v after the UPDATE was sent", time.Since(start))

	code, body := a.get(t, "/readyz?verbose")
	for _, want := range []string{
		"directory origin postgres postgres://gatehouse:xxxxx@",
		"circuit closed",
		"Redis cache standalone: reachable",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz?verbose (%d) lacks %q:\n%s", code, want, body)
		}
	}
	for _, r := range []*running{a, b} {
		if strings.Contains(r.logs.String()+body, originPassword) {
			t.Error("the origin's password is printed")
		}
	}

	// Redis killed: decisions go straight to the origin.
	rs.Kill()
	if _, err := conn.Exec(ctx, "UPDATE meet_user SET is_active = true WHERE id = $1", activeUser); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reactivated user is allowed with Redis down", func() bool { return allowed(a.check(t, tok)) })
	eventually(t, "/readyz?verbose reports Redis down", func() bool {
		_, body := a.get(t, "/readyz?verbose")
		return strings.Contains(body, "lookups go straight to the directory origin")
	})
}

// TestOriginWithoutRedis: the in-process cache, then the origin.
func TestOriginWithoutRedis(t *testing.T) {
	pg := startMeet(t)
	r := start(t, originConfig(t, pg, nil), Options{})
	if resp := r.check(t, "Bearer "+token(t, activeUser)); !allowed(resp) {
		t.Fatalf("active user denied: %s", reason(t, resp))
	}
	if resp := r.check(t, "Bearer "+token(t, inactiveUser)); allowed(resp) {
		t.Fatal("inactive user allowed")
	}
	if _, body := r.get(t, "/readyz?verbose"); !strings.Contains(body, "no Redis") {
		t.Errorf("/readyz?verbose:\n%s", body)
	}
}

// TestOriginRefusesStart: a query of the wrong shape, or an origin that
// cannot be reached, is a start-up error, and the password never shows.
func TestOriginRefusesStart(t *testing.T) {
	pg := startMeet(t)
	for name, mutate := range map[string]func(c *testConfig){
		"two columns": func(c *testConfig) { c.DirectoryUserQuery = "SELECT is_active, id FROM meet_user WHERE id = $1" },
		"not a boolean": func(c *testConfig) {
			c.DirectoryAppQuery = "SELECT client_id FROM meet_application WHERE client_id = $1"
		},
		"no parameter":   func(c *testConfig) { c.DirectoryUserQuery = "SELECT true" },
		"column refused": func(c *testConfig) { c.DirectoryUserQuery = "SELECT email = '' FROM meet_user WHERE id = $1" },
		"wrong password": func(c *testConfig) { c.DirectoryOriginPassword = "not-the-" + originPassword },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := originConfig(t, pg, nil)
			mutate(&cfg)
			var logs syncBuffer
			_, err := New(context.Background(), cfg.Config, testkit.NewLogger(&logs), Options{})
			if err == nil {
				t.Fatal("started")
			}
			if strings.Contains(err.Error()+logs.String(), originPassword) {
				t.Errorf("the error or the logs show the password: %v", err)
			}
			t.Log(err)
		})
	}
	// Settings that cannot work are refused before any connection.
	for name, mutate := range map[string]func(c *testConfig){
		"scheme":         func(c *testConfig) { c.DirectoryOrigin = "mysql://u:" + originPassword + "@h/db" },
		"users file too": func(c *testConfig) { c.UsersFile = usersFile(t) },
		"CA for postgres": func(c *testConfig) {
			c.DirectoryOriginCAFile = "/etc/ssl/ca.pem"
		},
		"empty query": func(c *testConfig) { c.DirectoryAppQuery = " " },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := originConfig(t, pg, nil)
			mutate(&cfg)
			err := cfg.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate: %v, want a *ConfigError", err)
			}
			if strings.Contains(err.Error(), originPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
