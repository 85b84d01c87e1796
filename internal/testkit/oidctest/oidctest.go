// Package oidctest is an OIDC identity provider written for tests: the
// token introspection endpoint (RFC 7662, with JSON answers or RFC 9701 JWT
// answers, signed and optionally encrypted) and the JWKS endpoint, served
// over loopback HTTP. No real provider can be installed where the tests
// run; this one speaks the protocol gatehouse's resource-server tokens use
// (docs/oidc.md), and counts what it is asked.
package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Defaults of the provider's client: what gatehouse must send.
const (
	ClientID     = "meet"
	ClientSecret = "meet-introspection-secret"
)

// Provider is the test's identity provider. Set answers with SetToken;
// change its behaviour with the exported fields' setters while tests run.
type Provider struct {
	srv *httptest.Server
	// Issuer is the provider's URL (its iss).
	Issuer string

	mu      sync.Mutex
	tokens  map[string]map[string]any
	status  int           // non-zero: answer this status to introspection
	wwwAuth string        // with status 401: this WWW-Authenticate
	delay   time.Duration // before answering introspection
	jwtMode bool
	signKey *ecdsa.PrivateKey
	kid     string
	encTo   *rsa.PublicKey

	introspections atomic.Int64
	jwksFetches    atomic.Int64
	badAuth        atomic.Int64
	seen           sync.Map // token → struct{}: every token introspected
}

// New starts a provider on 127.0.0.1, stopped at cleanup.
func New(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{tokens: map[string]map[string]any{}}
	p.rotate()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", p.introspect)
	mux.HandleFunc("GET /jwks", p.jwks)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oidctest: listen: %v", err)
	}
	p.srv = httptest.NewUnstartedServer(mux)
	p.srv.Listener.Close()
	p.srv.Listener = ln
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	p.Issuer = p.srv.URL
	return p
}

// IntrospectionURL and JWKSURL are the provider's endpoints.
func (p *Provider) IntrospectionURL() string { return p.srv.URL + "/introspect" }
func (p *Provider) JWKSURL() string          { return p.srv.URL + "/jwks" }

// Close stops the provider: later introspections cannot connect.
func (p *Provider) Close() { p.srv.Close() }

// SetToken makes token introspect to claims (active, sub, scope...). A
// token not set introspects to {"active": false}.
func (p *Provider) SetToken(token string, claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens[token] = claims
}

// Active returns the claims of an active token of sub with scope, for
// ClientID's audience, expiring in an hour.
func (p *Provider) Active(sub, scope string) map[string]any {
	return map[string]any{
		"active": true, "iss": p.Issuer, "sub": sub, "scope": scope,
		"client_id": "docs", "exp": time.Now().Add(time.Hour).Unix(),
	}
}

// FailWith makes introspection answer status (0: answer normally), with a
// WWW-Authenticate header when wwwAuth is not empty.
func (p *Provider) FailWith(status int, wwwAuth string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.wwwAuth = status, wwwAuth
}

// Delay makes introspection wait d before answering.
func (p *Provider) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// UseJWT switches to RFC 9701 answers signed with the provider's current
// key, and encrypted to encryptTo when it is not nil.
func (p *Provider) UseJWT(encryptTo *rsa.PublicKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jwtMode, p.encTo = true, encryptTo
}

// Rotate replaces the signing key with a new one under a new kid; the JWKS
// then lists only the new key.
func (p *Provider) Rotate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rotate()
}

func (p *Provider) rotate() {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	p.signKey = k
	p.kid = "k" + time.Now().Format("150405.000000000")
}

// Introspections is how many introspection requests the provider answered
// (or refused), JWKSFetches how many JWKS requests, BadAuth how many
// introspection requests came without the client's credentials.
func (p *Provider) Introspections() int64 { return p.introspections.Load() }
func (p *Provider) JWKSFetches() int64    { return p.jwksFetches.Load() }
func (p *Provider) BadAuth() int64        { return p.badAuth.Load() }

// Seen reports whether token was sent for introspection.
func (p *Provider) Seen(token string) bool { _, ok := p.seen.Load(token); return ok }

func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	p.introspections.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != ClientID || secret != ClientSecret {
		p.badAuth.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_client", error_description="Client authentication failed"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	token := r.PostForm.Get("token")
	p.seen.Store(token, struct{}{})
	p.mu.Lock()
	status, wwwAuth, delay := p.status, p.wwwAuth, p.delay
	claims, ok := p.tokens[token]
	jwtMode, key, kid, encTo := p.jwtMode, p.signKey, p.kid, p.encTo
	p.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		if wwwAuth != "" {
			w.Header().Set("WWW-Authenticate", wwwAuth)
		}
		w.WriteHeader(status)
		return
	}
	if !ok {
		claims = map[string]any{"active": false}
	}
	if !jwtMode {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(claims)
		return
	}
	body, err := p.jwtAnswer(claims, key, kid, encTo)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/token-introspection+jwt")
	_, _ = w.Write([]byte(body))
}

// jwtAnswer is an RFC 9701 answer: {iss, aud, iat, token_introspection}
// signed with ES256, encrypted with RSA-OAEP/A256GCM when encTo is set.
func (p *Provider) jwtAnswer(claims map[string]any, key *ecdsa.PrivateKey, kid string, encTo *rsa.PublicKey) (string, error) {
	payload, err := json.Marshal(map[string]any{
		"iss": p.Issuer, "aud": ClientID, "iat": time.Now().Unix(), "token_introspection": claims,
	})
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("token-introspection+jwt"))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	compact, err := jws.CompactSerialize()
	if err != nil || encTo == nil {
		return compact, err
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP, Key: encTo},
		(&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		return "", err
	}
	jwe, err := enc.Encrypt([]byte(compact))
	if err != nil {
		return "", err
	}
	return jwe.CompactSerialize()
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	p.jwksFetches.Add(1)
	p.mu.Lock()
	key, kid := p.signKey, p.kid
	p.mu.Unlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// RSAKey returns a new RSA key for encrypted answers (gatehouse's own key).
func RSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
