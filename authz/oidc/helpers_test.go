package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

const (
	testIssuer = "https://idp.example/realms/meet"
	testSecret = "s3cr3t-value:with/odd&chars"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// newToken returns a token unique to the test run, so that a test can look
// for its text in logs, errors and the shared cache.
func newToken(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "tok-" + hex.EncodeToString(b[:])
}

// provider is an identity provider written for the tests, over loopback:
// it answers the introspection endpoint with whatever answer says, serves
// a JWKS, and records what it was sent.
type provider struct {
	srv          *httptest.Server
	introspected atomic.Int64
	jwksServed   atomic.Int64

	mu       sync.Mutex
	answer   http.HandlerFunc
	jwks     []byte
	forms    []url.Values
	headers  []http.Header
	lastPath string
}

func newProvider(t testing.TB, answer http.HandlerFunc) *provider {
	t.Helper()
	p := &provider{answer: answer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		p.introspected.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.forms = append(p.forms, r.PostForm)
		p.headers = append(p.headers, r.Header.Clone())
		h := p.answer
		p.mu.Unlock()
		h(w, r)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksServed.Add(1)
		p.mu.Lock()
		b := p.jwks
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.lastPath = r.URL.Path
		p.mu.Unlock()
		http.NotFound(w, r)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) setAnswer(h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = h
}

func (p *provider) setJWKS(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jwks = b
}

func (p *provider) lastRequest() (url.Values, http.Header) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.forms) == 0 {
		return nil, nil
	}
	return p.forms[len(p.forms)-1], p.headers[len(p.headers)-1]
}

func (p *provider) introspectURL() string { return p.srv.URL + "/introspect" }
func (p *provider) jwksURL() string       { return p.srv.URL + "/jwks" }

// jsonAnswer answers 200 with claims as JSON.
func jsonAnswer(claims map[string]any) http.HandlerFunc {
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return rawAnswer(http.StatusOK, string(b))
}

func rawAnswer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// activeClaims is a good answer for a token expiring an hour after at.
func activeClaims(at time.Time) map[string]any {
	return map[string]any{
		"active":    true,
		"iss":       testIssuer,
		"scope":     "openid lasuite_meet",
		"client_id": "docs",
		"sub":       "sub-1",
		"exp":       at.Add(time.Hour).Unix(),
	}
}

// observer records the metrics.
type observer struct {
	mu       sync.Mutex
	outcomes map[string]int
	lookups  map[string]int
	misses   atomic.Int64 // memory misses, to know callers have passed the fast path
}

func newObserver() *observer {
	return &observer{outcomes: map[string]int{}, lookups: map[string]int{}}
}

func (o *observer) Introspected(outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes[outcome]++
}

func (o *observer) CacheLookup(layer, result string) {
	if layer == LayerMemory && result == LookupMiss {
		o.misses.Add(1)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lookups[layer+"/"+result]++
}

func (o *observer) outcome(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[s]
}

func (o *observer) lookup(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lookups[s]
}

// mapCache is a SharedCache in a map, with switchable failures.
type mapCache struct {
	mu      sync.Mutex
	m       map[[sha256.Size]byte][]byte
	ttls    map[[sha256.Size]byte]time.Duration
	getErr  error
	setErr  error
	gets    int
	sets    int
	hanging bool
}

func newMapCache() *mapCache {
	return &mapCache{m: map[[sha256.Size]byte][]byte{}, ttls: map[[sha256.Size]byte]time.Duration{}}
}

func (c *mapCache) Get(ctx context.Context, key [sha256.Size]byte) ([]byte, bool, error) {
	c.mu.Lock()
	c.gets++
	hanging, err := c.hanging, c.getErr
	v, ok := c.m[key]
	c.mu.Unlock()
	if hanging {
		<-ctx.Done()
		return nil, false, ctx.Err()
	}
	if err != nil {
		return nil, false, err
	}
	return append([]byte(nil), v...), ok, nil
}

func (c *mapCache) Set(_ context.Context, key [sha256.Size]byte, value []byte, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sets++
	if c.setErr != nil {
		return c.setErr
	}
	c.m[key] = append([]byte(nil), value...)
	c.ttls[key] = ttl
	return nil
}

func (c *mapCache) put(key [sha256.Size]byte, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = v
}

func (c *mapCache) get(key [sha256.Size]byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

// fixture is an Introspector against a provider, with a test clock, an
// observer and a log buffer.
type fixture struct {
	p     *provider
	in    *Introspector
	clock *testkit.Clock
	obs   *observer
	logs  *testkit.LogBuffer
}

// newFixture builds a fixture; edit adjusts the Config before New.
func newFixture(t testing.TB, answer http.HandlerFunc, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{
		p:     newProvider(t, answer),
		clock: testkit.NewClock(t0),
		obs:   newObserver(),
		logs:  &testkit.LogBuffer{},
	}
	cfg := Config{
		IntrospectionURL: f.p.introspectURL(),
		Issuer:           testIssuer,
		ClientSecret:     testSecret,
		Timeout:          2 * time.Second,
		Observer:         f.obs,
		Logger:           testkit.NewLogger(f.logs),
		Now:              f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.in = in
	return f
}

// introspect calls Introspect and checks that neither the error nor the
// logs so far hold the token.
func (f *fixture) introspect(t testing.TB, token string) (active bool, desc string, err error) {
	t.Helper()
	v, err := f.in.Introspect(context.Background(), token)
	if err != nil && strings.Contains(err.Error(), token) {
		t.Fatalf("error holds the token: %v", err)
	}
	if strings.Contains(f.logs.String(), token) {
		t.Fatalf("logs hold the token: %s", f.logs.String())
	}
	if !v.Active && (v.Sub != "" || v.Audience != "" || v.Scope != "") {
		t.Fatalf("refusal with claims: %+v", v)
	}
	return v.Active, v.Description, err
}
