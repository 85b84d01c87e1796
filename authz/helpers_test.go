package authz

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

var testSecret = []byte("a-test-secret-of-reasonable-length!")

const (
	activeUser   = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	inactiveUser = "11111111-2222-4333-8444-555555555555"
	unknownUser  = "99999999-9999-4999-8999-999999999999"
	testClient   = "meet-app"
)

// testNow has a fractional second on purpose: PyJWT compares floor(exp)
// against a float clock.
var testNow = time.Unix(1_800_000_000, 500_000_000)

// fakeDir is an in-test directory with call counting and error injection.
type fakeDir struct {
	mu      sync.Mutex
	records map[string]userstore.Status // "user:<id>" / "app:<id>"
	err     error
	calls   []string
}

func newFakeDir() *fakeDir {
	return &fakeDir{records: map[string]userstore.Status{
		"user:" + activeUser:   userstore.Active,
		"user:" + inactiveUser: userstore.Inactive,
		"app:" + testClient:    userstore.Active,
		"app:disabled-app":     userstore.Inactive,
	}}
}

func (f *fakeDir) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := kind.String() + ":" + id
	f.calls = append(f.calls, key)
	if err := ctx.Err(); err != nil {
		return userstore.NotFound, fmt.Errorf("lookup %s: %w: %w", key, userstore.ErrUnavailable, err)
	}
	if f.err != nil {
		return userstore.NotFound, f.err
	}
	return f.records[key], nil
}

func (f *fakeDir) set(kind userstore.Kind, id string, s userstore.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[kind.String()+":"+id] = s
}

func (f *fakeDir) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func testConfig() JWTConfig {
	return JWTConfig{Secret: testSecret, Algorithm: "HS256", Issuer: DefaultIssuer}
}

// meetClaims returns the claims Meet puts in a delegation token at testNow.
func meetClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iat":       testNow.Unix(),
		"exp":       testNow.Unix() + 3600,
		"iss":       DefaultIssuer,
		"user_id":   activeUser,
		"client_id": testClient,
		"delegated": true,
		"scope":     "rooms:list rooms:retrieve",
	}
}

// with returns a copy of mc with the given changes; a nil value deletes.
func with(mc jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range mc {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

func sign(t testing.TB, mc jwt.MapClaims) string {
	t.Helper()
	return signWith(t, jwt.SigningMethodHS256, testSecret, mc)
}

func signWith(t testing.TB, m jwt.SigningMethod, key any, mc jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, mc).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

type fixture struct {
	a     *Authorizer
	dir   *fakeDir
	clock *testkit.Clock
}

func newFixture(t testing.TB, mutate func(*Options)) *fixture {
	t.Helper()
	f := &fixture{dir: newFakeDir(), clock: testkit.NewClock(testNow)}
	opts := Options{JWT: testConfig(), Directory: f.dir, Now: f.clock.Now}
	if mutate != nil {
		mutate(&opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.a = a
	return f
}

func (f *fixture) decide(t testing.TB, authorization string) Decision {
	t.Helper()
	return f.a.Decide(context.Background(), &Request{Method: "GET", Path: "/", Authorization: authorization})
}

var errBoom = errors.New("boom")
