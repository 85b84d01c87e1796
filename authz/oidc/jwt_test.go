package oidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// signer signs introspection JWTs as an RFC 9701 provider does.
type signer struct {
	alg jose.SignatureAlgorithm
	key crypto.Signer
	kid string
}

func newECSigner(t testing.TB, curve elliptic.Curve, alg jose.SignatureAlgorithm, kid string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{alg: alg, key: k, kid: kid}
}

func (s signer) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}
}

func jwksOf(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign returns the compact JWS of claims.
func (s signer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("token-introspection+jwt")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// encrypt returns the compact JWE of a JWS for pub.
func encrypt(t testing.TB, pub any, alg jose.KeyAlgorithm, enc jose.ContentEncryption, jws string) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub}, (&jose.EncrypterOptions{}).WithContentType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(jws))
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jwtClaims wraps an introspection answer in the JWT of RFC 9701.
func jwtClaims(at time.Time, ti map[string]any) map[string]any {
	return map[string]any{
		"iss":                 testIssuer,
		"aud":                 "meet",
		"iat":                 at.Unix(),
		"token_introspection": ti,
	}
}

func jwtAnswer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/token-introspection+jwt")
		_, _ = w.Write([]byte(body))
	}
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJWSAnswerAccept(t *testing.T) {
	s := newECSigner(t, elliptic.P256(), jose.ES256, "k1")
	f := jwtFixture(t, s, nil, nil)
	f.p.setAnswer(jwtAnswer(s.sign(t, jwtClaims(t0, activeClaims(t0)))))
	active, _, err := f.introspect(t, newToken(t))
	if err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	_, h := f.p.lastRequest()
	if got := h.Get("Accept"); got != "application/token-introspection+jwt" {
		t.Fatalf("Accept = %q", got)
	}
}

// jwtFixture is a JWT-mode Introspector whose provider signs with s and,
// when encKey is set, encrypts for it.
func jwtFixture(t *testing.T, s signer, encKey *rsa.PrivateKey, edit func(*Config)) *fixture {
	t.Helper()
	f := newFixture(t, rawAnswer(http.StatusInternalServerError, "unset"), func(c *Config) {
		c.JWKSURL = "http://127.0.0.1:1/placeholder" // replaced below
	})
	f.p.setJWKS(jwksOf(t, s.jwk()))
	cfg := Config{
		IntrospectionURL: f.p.introspectURL(), Issuer: testIssuer, ClientSecret: testSecret,
		JWKSURL: f.p.jwksURL(), Observer: f.obs, Now: f.clock.Now, Timeout: 2 * time.Second,
		Logger: testkit.NewLogger(f.logs),
	}
	if encKey != nil {
		cfg.EncryptionKey = encKey
	}
	if edit != nil {
		edit(&cfg)
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	return f
}

func TestJWTAnswers(t *testing.T) {
	es256 := newECSigner(t, elliptic.P256(), jose.ES256, "k1")
	es384 := newECSigner(t, elliptic.P384(), jose.ES384, "k1")
	rsaSigner := signer{alg: jose.RS256, key: newRSAKey(t), kid: "k1"}
	encKey := newRSAKey(t)
	otherEncKey := newRSAKey(t)
	good := func() map[string]any { return jwtClaims(t0, activeClaims(t0)) }
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	innerWith := func(k string, v any) map[string]any {
		ti := activeClaims(t0)
		ti[k] = v
		return jwtClaims(t0, ti)
	}
	jsonBody, _ := json.Marshal(activeClaims(t0))

	rows := []struct {
		name    string
		encrypt bool // the Introspector requires JWE
		body    func(t *testing.T) string
		active  bool
		err     bool
	}{
		{name: "JWS", body: func(t *testing.T) string { return es256.sign(t, good()) }, active: true},
		{name: "JWS with trailing newline", body: func(t *testing.T) string { return es256.sign(t, good()) + "\r\n" }, active: true},
		{name: "JWS without kid", body: func(t *testing.T) string {
			s := es256
			s.kid = ""
			return s.sign(t, good())
		}, active: true},
		{name: "JWE(JWS)", encrypt: true, body: func(t *testing.T) string {
			return encrypt(t, &encKey.PublicKey, jose.RSA_OAEP, jose.A256GCM, es256.sign(t, good()))
		}, active: true},
		{name: "inner iss is not checked", body: func(t *testing.T) string {
			return es256.sign(t, innerWith("iss", "https://other.example"))
		}, active: true},
		{name: "inner checks apply", body: func(t *testing.T) string { return es256.sign(t, innerWith("scope", "openid")) }},
		{name: "inner not active", body: func(t *testing.T) string { return es256.sign(t, innerWith("active", false)) }},
		{name: "wrong alg ES384", body: func(t *testing.T) string { return es384.sign(t, good()) }},
		{name: "wrong alg RS256", body: func(t *testing.T) string { return rsaSigner.sign(t, good()) }},
		{name: "unsigned JSON in JWT mode", body: func(*testing.T) string { return string(jsonBody) }},
		{name: "alg none", body: func(t *testing.T) string {
			parts := strings.Split(es256.sign(t, good()), ".")
			return `eyJhbGciOiJub25lIn0.` + parts[1] + "."
		}},
		{name: "tampered payload", body: func(t *testing.T) string {
			parts := strings.Split(es256.sign(t, good()), ".")
			other := strings.Split(es256.sign(t, with("aud", "other")), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}},
		{name: "JWS when JWE required", encrypt: true, body: func(t *testing.T) string { return es256.sign(t, good()) }},
		{name: "JSON when JWE required", encrypt: true, body: func(*testing.T) string { return string(jsonBody) }},
		{name: "JWE for another key", encrypt: true, body: func(t *testing.T) string {
			return encrypt(t, &otherEncKey.PublicKey, jose.RSA_OAEP, jose.A256GCM, es256.sign(t, good()))
		}},
		{name: "JWE with other enc", encrypt: true, body: func(t *testing.T) string {
			return encrypt(t, &encKey.PublicKey, jose.RSA_OAEP, jose.A128GCM, es256.sign(t, good()))
		}},
		{name: "JWE with RSA1_5", encrypt: true, body: func(t *testing.T) string {
			return encrypt(t, &encKey.PublicKey, jose.RSA1_5, jose.A256GCM, es256.sign(t, good()))
		}},
		{name: "JWE holding plain JSON", encrypt: true, body: func(t *testing.T) string {
			return encrypt(t, &encKey.PublicKey, jose.RSA_OAEP, jose.A256GCM, string(jsonBody))
		}},
		{name: "iss missing", body: func(t *testing.T) string { return es256.sign(t, with("iss", nil)) }},
		{name: "iss wrong", body: func(t *testing.T) string { return es256.sign(t, with("iss", "https://evil.example")) }},
		{name: "aud missing", body: func(t *testing.T) string { return es256.sign(t, with("aud", nil)) }},
		{name: "aud other", body: func(t *testing.T) string { return es256.sign(t, with("aud", "docs")) }},
		{name: "aud list with client", body: func(t *testing.T) string { return es256.sign(t, with("aud", []string{"docs", "meet"})) }, active: true},
		{name: "aud list without client", body: func(t *testing.T) string { return es256.sign(t, with("aud", []string{"docs"})) }},
		{name: "token_introspection missing", body: func(t *testing.T) string { return es256.sign(t, with("token_introspection", nil)) }},
		{name: "token_introspection a string", body: func(t *testing.T) string {
			return es256.sign(t, with("token_introspection", `{"active":true}`))
		}},
		{name: "JWT exp past", body: func(t *testing.T) string { return es256.sign(t, with("exp", t0.Add(-time.Minute).Unix())) }},
		{name: "JWT nbf future", body: func(t *testing.T) string { return es256.sign(t, with("nbf", t0.Add(time.Minute).Unix())) }},
		{name: "unknown kid", body: func(t *testing.T) string {
			s := es256
			s.kid = "k9"
			return s.sign(t, good())
		}, err: true},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var key *rsa.PrivateKey
			if row.encrypt {
				key = encKey
			}
			f := jwtFixture(t, es256, key, nil)
			f.p.setAnswer(jwtAnswer(row.body(t)))
			active, _, err := f.introspect(t, newToken(t))
			if row.err {
				if err == nil {
					t.Fatalf("no error (active=%v)", active)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if active != row.active {
				t.Fatalf("active = %v, want %v", active, row.active)
			}
		})
	}
}

// TestJWKSRotation: the JWKS is fetched on first use; an answer signed with
// a new kid makes the next request refetch it, but not more than once per
// 10 s.
func TestJWKSRotation(t *testing.T) {
	k1 := newECSigner(t, elliptic.P256(), jose.ES256, "k1")
	k2 := newECSigner(t, elliptic.P256(), jose.ES256, "k2")
	k3 := newECSigner(t, elliptic.P256(), jose.ES256, "k3")
	f := jwtFixture(t, k1, nil, nil)
	answerWith := func(s signer) {
		f.p.setAnswer(func(w http.ResponseWriter, _ *http.Request) {
			now := f.clock.Now()
			jwtAnswer(s.sign(t, jwtClaims(now, activeClaims(now))))(w, nil)
		})
	}
	check := func(wantActive bool, wantFetches int64) {
		t.Helper()
		active, _, err := f.introspect(t, newToken(t))
		if wantActive && (err != nil || !active) {
			t.Fatalf("active=%v err=%v", active, err)
		}
		if !wantActive && err == nil {
			t.Fatalf("no error (active=%v)", active)
		}
		if got := f.p.jwksServed.Load(); got != wantFetches {
			t.Fatalf("JWKS fetched %d times, want %d", got, wantFetches)
		}
	}
	if f.p.jwksServed.Load() != 0 {
		t.Fatal("JWKS fetched before first use")
	}
	answerWith(k1)
	check(true, 1)
	check(true, 1) // cached keys

	// The provider rotates to k2, publishing both.
	f.clock.Advance(11 * time.Second)
	f.p.setJWKS(jwksOf(t, k1.jwk(), k2.jwk()))
	answerWith(k2)
	check(true, 2)
	check(true, 2)

	// Another rotation within 10 s of that fetch: no refetch, no verdict.
	f.clock.Advance(5 * time.Second)
	f.p.setJWKS(jwksOf(t, k2.jwk(), k3.jwk()))
	answerWith(k3)
	check(false, 2)
	check(false, 2)
	// Old keys still work meanwhile.
	answerWith(k2)
	check(true, 2)

	// Past the 10 s, the unknown kid refetches.
	f.clock.Advance(5 * time.Second)
	answerWith(k3)
	check(true, 3)
}

// TestJWKSKeysFiltered: keys that cannot verify the algorithm (another key
// type or curve, an encryption key, another alg, a malformed entry) are
// skipped without spoiling the good one.
func TestJWKSKeysFiltered(t *testing.T) {
	good := newECSigner(t, elliptic.P256(), jose.ES256, "")
	p384 := newECSigner(t, elliptic.P384(), jose.ES384, "")
	rsaKey := newRSAKey(t)
	f := jwtFixture(t, good, nil, nil)
	encUse := good.jwk()
	encUse.Use = "enc"
	otherAlg := good.jwk()
	otherAlg.Algorithm = "ES384"
	set := []any{
		p384.jwk(),
		jose.JSONWebKey{Key: &rsaKey.PublicKey, Algorithm: "ES256"},
		map[string]any{"kty": "EC", "crv": "P-256", "x": "bad"},
		map[string]any{"kty": "unknown"},
		good.jwk(),
	}
	b, err := json.Marshal(map[string]any{"keys": set})
	if err != nil {
		t.Fatal(err)
	}
	f.p.setJWKS(b)
	f.p.setAnswer(jwtAnswer(good.sign(t, jwtClaims(t0, activeClaims(t0)))))
	if active, _, err := f.introspect(t, newToken(t)); err != nil || !active {
		t.Fatalf("active=%v err=%v", active, err)
	}
	keys := f.in.jwks.match("")
	if len(keys) != 1 {
		t.Fatalf("%d keys kept, want 1", len(keys))
	}

	// Only keys unfit for ES256: the signature cannot be checked.
	f2 := jwtFixture(t, good, nil, nil)
	f2.p.setJWKS(jwksOf(t, encUse, otherAlg, p384.jwk()))
	f2.p.setAnswer(jwtAnswer(good.sign(t, jwtClaims(t0, activeClaims(t0)))))
	if active, _, err := f2.introspect(t, newToken(t)); err == nil || active {
		t.Fatalf("verified with an unfit key: active=%v err=%v", active, err)
	}
}

func TestJWKSErrors(t *testing.T) {
	s := newECSigner(t, elliptic.P256(), jose.ES256, "k1")
	rows := []struct {
		name string
		jwks func(w http.ResponseWriter)
	}{
		{name: "500", jwks: func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }},
		{name: "not JSON", jwks: func(w http.ResponseWriter) { _, _ = w.Write([]byte("<html>")) }},
		{name: "oversize", jwks: func(w http.ResponseWriter) {
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`))
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			f := jwtFixture(t, s, nil, nil)
			jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { row.jwks(w) }))
			t.Cleanup(jwksSrv.Close)
			in, err := New(Config{IntrospectionURL: f.p.introspectURL(), Issuer: testIssuer, ClientSecret: testSecret,
				JWKSURL: jwksSrv.URL + "/jwks", Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			f.in = in
			f.p.setAnswer(jwtAnswer(s.sign(t, jwtClaims(t0, activeClaims(t0)))))
			if active, _, err := f.introspect(t, newToken(t)); err == nil || active {
				t.Fatalf("active=%v err=%v", active, err)
			}
		})
	}
}

func TestLoadPrivateKey(t *testing.T) {
	rsaKey := newRSAKey(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8RSA, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	pkcs8EC, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	for name, block := range map[string]*pem.Block{
		"PKCS#1":     {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)},
		"PKCS#8 RSA": {Type: "PRIVATE KEY", Bytes: pkcs8RSA},
		"PKCS#8 EC":  {Type: "PRIVATE KEY", Bytes: pkcs8EC},
		"SEC1":       {Type: "EC PRIVATE KEY", Bytes: sec1},
	} {
		if _, err := LoadPrivateKey(pem.EncodeToMemory(block)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	secretish := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("SECRETKEYMATERIAL")})
	_, err = LoadPrivateKey(secretish)
	if err == nil || strings.Contains(err.Error(), "SECRETKEYMATERIAL") {
		t.Fatalf("garbage key: %v", err)
	}
	if _, err := LoadPrivateKey([]byte("not pem")); err == nil {
		t.Fatal("no error for non-PEM")
	}
	if _, err := LoadPrivateKey(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})); err == nil {
		t.Fatal("no error for a certificate")
	}

	// An EC key decrypts ECDH-ES answers.
	s := newECSigner(t, elliptic.P256(), jose.ES256, "k1")
	f := newFixture(t, nil, nil)
	f.p.setJWKS(jwksOf(t, s.jwk()))
	in, err := New(Config{IntrospectionURL: f.p.introspectURL(), Issuer: testIssuer, ClientSecret: testSecret,
		JWKSURL: f.p.jwksURL(), Now: f.clock.Now, EncryptionKey: ecKey, EncryptionAlgorithm: "ECDH-ES+A256KW"})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	f.p.setAnswer(jwtAnswer(encrypt(t, &ecKey.PublicKey, jose.ECDH_ES_A256KW, jose.A256GCM, s.sign(t, jwtClaims(t0, activeClaims(t0))))))
	if active, _, err := f.introspect(t, newToken(t)); err != nil || !active {
		t.Fatalf("ECDH-ES: active=%v err=%v", active, err)
	}
}
