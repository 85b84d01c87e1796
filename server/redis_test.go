package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/redistest"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

const testClientID = "test-app" // the client_id of token()

func allowed(resp *authv3.CheckResponse) bool {
	return codes.Code(resp.GetStatus().GetCode()) == codes.OK
}

// reason is the deny's detail, or "" for an allow.
func reason(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	if allowed(resp) {
		return ""
	}
	return detail(t, resp)
}

func httpStatus(resp *authv3.CheckResponse) int32 {
	return int32(resp.GetDeniedResponse().GetStatus().GetCode())
}

// waitSubscribed waits until the server's invalidation listener is
// subscribed to channel, so that a message published next is heard.
func waitSubscribed(t *testing.T, c redis.UniversalClient, channel string) {
	t.Helper()
	eventually(t, "the server subscribes to "+channel, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := c.PubSubNumSub(ctx, channel).Result()
		return err == nil && n[channel] >= 1
	})
}

func redisDo(t *testing.T, c redis.UniversalClient, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
}

// TestInvalidationLatency: with a 5-minute positive TTL, only the published
// message can explain the deny, and it must arrive within 100 ms.
func TestInvalidationLatency(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.CacheTTL = 5 * time.Minute
	hset(t, rs, activeUser, "1")
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)
	if resp := r.check(t, tok); !allowed(resp) {
		t.Fatalf("active user denied: %v", resp)
	}
	waitSubscribed(t, rs.Client(), "gatehouse:invalidate")
	hset(t, rs, activeUser, "0")
	if resp := r.check(t, tok); !allowed(resp) {
		t.Fatal("denied before any invalidation: the cache is not in the way, the test proves nothing")
	}

	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "user:"+activeUser)
	published := time.Now()
	deadline := published.Add(100 * time.Millisecond)
	for {
		resp := r.check(t, tok)
		if !allowed(resp) {
			if got := detail(t, resp); got != "User account is disabled." {
				t.Fatalf("deny %q, want User account is disabled.", got)
			}
			t.Logf("deactivation seen %v after PUBLISH", time.Since(published))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still allowed %v after the invalidation was published", time.Since(published))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNegativeTTL: a user created after a "not found" is found once the
// negative TTL has passed, without any invalidation.
func TestNegativeTTL(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.CacheNegativeTTL = 400 * time.Millisecond
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)
	asked := time.Now() // the negative entry is stored after this
	if got := reason(t, r.check(t, tok)); got != "User not found." {
		t.Fatalf("unknown user: %q", got)
	}
	hset(t, rs, activeUser, "1") // no PUBLISH
	if resp := r.check(t, tok); allowed(resp) && time.Since(asked) < cfg.CacheNegativeTTL {
		t.Fatal("found within the negative TTL: the negative entry was not cached, the test proves nothing")
	}
	// The positive TTL is an hour: only the negative TTL can let this
	// happen within eventually's bound.
	eventually(t, "the new user is found once the negative TTL passed", func() bool { return allowed(r.check(t, tok)) })
}

// TestInvalidationSurvivesRestart: after Redis restarts, the listener
// subscribes again and purges the cache (messages may have been missed),
// and messages published afterwards are heard.
func TestInvalidationSurvivesRestart(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL()) // 1-hour TTL
	hset(t, rs, activeUser, "1")
	hset(t, rs, inactiveUser, "1")
	r := start(t, cfg, Options{})
	tokA, tokB := "Bearer "+token(t, activeUser), "Bearer "+token(t, inactiveUser)
	if !allowed(r.check(t, tokA)) || !allowed(r.check(t, tokB)) {
		t.Fatal("active users denied")
	}
	waitSubscribed(t, rs.Client(), "gatehouse:invalidate")

	rs.Restart() // empty dataset: persistence is off
	hset(t, rs, activeUser, "0")
	hset(t, rs, inactiveUser, "1")
	// A changed without a message: only the purge after re-subscribing can
	// explain the deny.
	eventually(t, "the cache is purged after the re-subscription", func() bool {
		return reason(t, r.check(t, tokA)) == "User account is disabled."
	})
	if !strings.Contains(r.logs.String(), "resubscribed; in-process cache purged") {
		t.Error("no log line about the purge")
	}
	waitSubscribed(t, rs.Client(), "gatehouse:invalidate")
	if !allowed(r.check(t, tokB)) {
		t.Fatal("B denied")
	}
	hset(t, rs, inactiveUser, "0")
	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "user:"+inactiveUser)
	eventually(t, "a message published after the restart is heard", func() bool {
		return reason(t, r.check(t, tokB)) == "User account is disabled."
	})
}

// TestPrefixChangesKeysAndChannel: GATEHOUSE_REDIS_PREFIX applies to both.
func TestPrefixChangesKeysAndChannel(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.RedisPrefix = "tenant1/"
	redisDo(t, rs.Client(), "HSET", "tenant1/user:"+activeUser, "active", "1")
	hset(t, rs, inactiveUser, "1") // default prefix: must not be seen
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)
	if !allowed(r.check(t, tok)) {
		t.Fatal("user under the custom prefix denied")
	}
	if got := reason(t, r.check(t, "Bearer "+token(t, inactiveUser))); got != "User not found." {
		t.Fatalf("user under the default prefix: %q, want User not found.", got)
	}
	waitSubscribed(t, rs.Client(), "tenant1/invalidate")
	redisDo(t, rs.Client(), "HSET", "tenant1/user:"+activeUser, "active", "0")
	redisDo(t, rs.Client(), "PUBLISH", "tenant1/invalidate", "user:"+activeUser)
	eventually(t, "invalidation on the prefixed channel", func() bool {
		return reason(t, r.check(t, tok)) == "User account is disabled."
	})
}

// TestApplications: docs/design.md step 9 against real Redis.
func TestApplications(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.CheckApplications = true
	hset(t, rs, activeUser, "1")
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)

	resp := r.check(t, tok)
	if allowed(resp) || httpStatus(resp) != http.StatusUnauthorized || detail(t, resp) != "Application not found." {
		t.Fatalf("unknown application: %d %q", httpStatus(resp), detail(t, resp))
	}
	waitSubscribed(t, rs.Client(), "gatehouse:invalidate")
	redisDo(t, rs.Client(), "HSET", "gatehouse:app:"+testClientID, "active", "0")
	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "app:"+testClientID)
	eventually(t, "inactive application", func() bool {
		resp := r.check(t, tok)
		return !allowed(resp) && httpStatus(resp) == http.StatusUnauthorized && detail(t, resp) == "Application is disabled."
	})
	if !strings.Contains(header(r.check(t, tok), "www-authenticate"), `error="invalid_token"`) {
		t.Error("application deny without the invalid_token challenge")
	}
	redisDo(t, rs.Client(), "HSET", "gatehouse:app:"+testClientID, "active", "1")
	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "app:"+testClientID)
	eventually(t, "active application allowed", func() bool { return allowed(r.check(t, tok)) })
	// Revoking the application revokes every token of it at once.
	redisDo(t, rs.Client(), "HSET", "gatehouse:app:"+testClientID, "active", "0")
	redisDo(t, rs.Client(), "PUBLISH", "gatehouse:invalidate", "app:"+testClientID)
	eventually(t, "application revoked", func() bool { return reason(t, r.check(t, tok)) == "Application is disabled." })
}

// TestOutage: Redis killed while serving. Cached entries answer within the
// stale window, uncached lookups are 503 with Retry-After, never an allow;
// the circuit opens, /readyz stays 200 and says so; Redis back on the same
// address: recovery without restarting gatehouse.
func TestOutage(t *testing.T) {
	rs := redistest.Start(t)
	cfg := redisConfig(t, rs.URL())
	cfg.CacheTTL = 100 * time.Millisecond
	cfg.CacheStaleIfError = 2 * time.Second
	cfg.RedisTimeout = 300 * time.Millisecond
	hset(t, rs, activeUser, "1")
	hset(t, rs, inactiveUser, "0")
	r := start(t, cfg, Options{})
	tokA, tokB, tokU := "Bearer "+token(t, activeUser), "Bearer "+token(t, inactiveUser), "Bearer "+token(t, "0b4c8b7e-3f4e-4bd0-9c1b-7c2f7f9d1a10")
	if !allowed(r.check(t, tokA)) {
		t.Fatal("active user denied")
	}
	if got := reason(t, r.check(t, tokB)); got != "User account is disabled." {
		t.Fatalf("inactive user: %q", got)
	}
	cachedAt := time.Now()

	rs.Kill()
	time.Sleep(2 * cfg.CacheTTL) // past the TTL: only the stale window keeps them
	for time.Since(cachedAt) < cfg.CacheStaleIfError-500*time.Millisecond {
		if resp := r.check(t, tokA); !allowed(resp) {
			t.Fatalf("cached active user not served within the stale window (%v after caching): %d %q",
				time.Since(cachedAt), httpStatus(resp), resp.GetDeniedResponse().GetBody())
		}
		if got := reason(t, r.check(t, tokB)); got != "User account is disabled." {
			t.Fatalf("cached inactive user within the stale window: %q", got)
		}
		resp := r.check(t, tokU)
		if allowed(resp) || httpStatus(resp) != http.StatusServiceUnavailable || header(resp, "retry-after") == "" {
			t.Fatalf("uncached user with Redis down: allowed=%v status %d retry-after %q", allowed(resp), httpStatus(resp), header(resp, "retry-after"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The circuit is open by now: an uncached lookup fails without waiting
	// for the Redis timeout.
	// One lookup per cooldown is let through as a trial, so of a quick
	// series at most one may wait for the timeout.
	slow := 0
	var fastest time.Duration = time.Hour
	for range 5 {
		began := time.Now()
		resp := r.check(t, tokU)
		took := time.Since(began)
		if allowed(resp) || httpStatus(resp) != http.StatusServiceUnavailable {
			t.Fatalf("uncached user with the circuit open: allowed=%v status %d", allowed(resp), httpStatus(resp))
		}
		if took >= cfg.RedisTimeout {
			slow++
		}
		fastest = min(fastest, took)
	}
	// Without the circuit all 5 would wait; a loaded machine may make one
	// more look slow, hence 2.
	if slow > 2 {
		t.Errorf("with the circuit open, %d of 5 lookups waited for the Redis timeout (%v)", slow, cfg.RedisTimeout)
	}
	t.Logf("503 with the circuit open in %v (fastest of 5; %d waited for the timeout as a trial)", fastest, slow)
	code, body := r.get(t, "/readyz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "circuit open") && !strings.Contains(body, "circuit half-open") {
		t.Errorf("/readyz?verbose during the outage = %d %q; want 200 and the circuit reported", code, body)
	}
	if !strings.Contains(r.logs.String(), "directory circuit opened") {
		t.Error("no log line about the circuit opening")
	}
	if n := strings.Count(r.logs.String(), "directory circuit opened"); n > 3 {
		t.Errorf("the circuit opening was logged %d times; want once per state change", n)
	}

	// Past the stale window, the cached user fails closed too.
	eventually(t, "stale entries expire", func() bool {
		resp := r.check(t, tokA)
		// The slack covers a slow check on a loaded machine.
		if allowed(resp) && time.Since(cachedAt) > cfg.CacheStaleIfError+3*time.Second {
			t.Fatalf("allowed %v after caching, beyond the stale window", time.Since(cachedAt))
		}
		return !allowed(resp) && httpStatus(resp) == http.StatusServiceUnavailable
	})

	rs.Restart()
	hset(t, rs, "0b4c8b7e-3f4e-4bd0-9c1b-7c2f7f9d1a10", "1")
	recovering := time.Now()
	eventually(t, "recovery once Redis is back", func() bool { return allowed(r.check(t, tokU)) })
	t.Logf("recovered %v after Redis came back", time.Since(recovering))
	eventually(t, "the circuit closes", func() bool {
		_, body := r.get(t, "/readyz?verbose")
		return strings.Contains(body, "circuit closed")
	})
}

// deployConfig is a server configuration for Redis described by set.
func deployConfig(t *testing.T, set func(c *testConfig)) testConfig {
	cfg := baseConfig(t)
	cfg.CacheTTL = time.Hour
	cfg.RedisTimeout = 2 * time.Second
	set(&cfg)
	return cfg
}

// endToEnd checks a lookup and an invalidation through a running server
// whose Redis writer is w.
func endToEnd(t *testing.T, cfg testConfig, w redis.UniversalClient) {
	t.Helper()
	redisDo(t, w, "HSET", "gatehouse:user:"+activeUser, "active", "1")
	r := start(t, cfg, Options{})
	tok := "Bearer " + token(t, activeUser)
	if resp := r.check(t, tok); !allowed(resp) {
		t.Fatalf("active user denied: %d %s", httpStatus(resp), resp.GetDeniedResponse().GetBody())
	}
	redisDo(t, w, "HSET", "gatehouse:user:"+activeUser, "active", "0")
	eventually(t, "invalidation", func() bool {
		redisDo(t, w, "PUBLISH", "gatehouse:invalidate", "user:"+activeUser)
		return reason(t, r.check(t, tok)) == "User account is disabled."
	})
	code, body := r.get(t, "/readyz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "[+]directory redis") || !strings.Contains(body, "circuit closed") {
		t.Errorf("/readyz?verbose = %d %q; want the directory reachable, circuit closed", code, body)
	}
}

func TestSentinelEndToEnd(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master)
	t.Run("url", func(t *testing.T) {
		endToEnd(t, deployConfig(t, func(c *testConfig) {
			c.Redis = &redisstore.ClientConfig{URL: "redis-sentinel://" + sentinel.Addr() + "/0?master_name=" + redistest.SentinelMaster}
		}), master.Client())
	})
	t.Run("settings", func(t *testing.T) {
		redisDo(t, master.Client(), "FLUSHALL")
		endToEnd(t, deployConfig(t, func(c *testConfig) {
			c.Redis = &redisstore.ClientConfig{SentinelAddrs: []string{sentinel.Addr()}, SentinelMaster: redistest.SentinelMaster}
		}), master.Client())
	})
}

func TestTLSEndToEnd(t *testing.T) {
	rs, files := redistest.StartTLS(t, true)
	endToEnd(t, deployConfig(t, func(c *testConfig) {
		c.Redis = &redisstore.ClientConfig{
			URL:         rs.TLSURL(),
			TLSCAFile:   files.CA,
			TLSCertFile: files.ClientCert,
			TLSKeyFile:  files.ClientKey,
		}
	}), rs.Client())
}

func TestClusterEndToEnd(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	endToEnd(t, deployConfig(t, func(c *testConfig) {
		c.Redis = &redisstore.ClientConfig{ClusterAddrs: cl.Addrs()}
	}), cl.Client(t))
}

// TestRedisACLUserAndPassword: the Redis user name and password reach Redis
// (an ACL user that may only touch gatehouse's keys and channel); a wrong
// password fails closed and is never printed. (GATEHOUSE_REDIS_PASSWORD_FILE
// is read by internal/config: TestRedisSettings, and cmd/gatehouse's
// TestServeRedisPasswordFile end to end.)
func TestRedisACLUserAndPassword(t *testing.T) {
	const password = "acl-password-never-printed"
	rs := redistest.Start(t)
	redisDo(t, rs.Client(), "ACL", "SETUSER", "gatehouse", "on", ">"+password, "~gatehouse:*", "&gatehouse:*", "+@all")
	cfg := redisConfig(t, rs.URL())
	cfg.Redis.Username = "gatehouse"
	cfg.Redis.Password = password
	endToEnd(t, cfg, rs.Client())

	wrong := redisConfig(t, rs.URL())
	wrong.Redis.Username = "gatehouse"
	wrong.Redis.Password = "not-" + password
	r := start(t, wrong, Options{})
	resp := r.check(t, "Bearer "+token(t, inactiveUser))
	if allowed(resp) || httpStatus(resp) != http.StatusServiceUnavailable {
		t.Fatalf("wrong password: allowed=%v status %d; want 503", allowed(resp), httpStatus(resp))
	}
	_, body := r.get(t, "/readyz?verbose")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if out := body + r.logs.String(); strings.Contains(out, password) {
		t.Errorf("the password is printed:\n%s", out)
	}
	if !strings.Contains(body, "WRONGPASS") {
		t.Errorf("/readyz?verbose does not say why: %s", body)
	}
}
