package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// checkAnswer turns a 200 answer into a verdict. A refusal error means the
// answer was read and refused ("Login failed"); any other error means no
// verdict could be had (the JWKS unavailable).
func (i *Introspector) checkAnswer(ctx context.Context, body []byte) (authz.Introspection, error) {
	now := i.cfg.now()
	if i.cfg.jwksURL == "" {
		m, err := decodeObject(body)
		if err != nil {
			return authz.Introspection{}, err
		}
		return i.checkIntrospection(m, true, now)
	}
	// JWT mode: the answer must be a JWS (or a JWE holding one when a
	// decryption key is set). A plain JSON answer, or a JWS where a JWE is
	// required, fails to parse and is refused: no downgrade.
	compact := strings.TrimSpace(string(body))
	if i.cfg.encryptionKey != nil {
		jwe, err := jose.ParseEncryptedCompact(compact,
			[]jose.KeyAlgorithm{i.cfg.encryptionAlg}, []jose.ContentEncryption{i.cfg.encryptionEnc})
		if err != nil {
			return authz.Introspection{}, refusal("answer is not a JWE with the configured algorithms")
		}
		plain, err := jwe.Decrypt(i.cfg.encryptionKey)
		if err != nil {
			return authz.Introspection{}, refusal("answer does not decrypt")
		}
		compact = strings.TrimSpace(string(plain))
	}
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{i.cfg.signingAlg})
	if err != nil {
		return authz.Introspection{}, refusal("answer is not a JWS with the configured algorithm")
	}
	if len(jws.Signatures) != 1 {
		return authz.Introspection{}, refusal("answer does not have exactly one signature")
	}
	keys, err := i.jwks.keysFor(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return authz.Introspection{}, err
	}
	var payload []byte
	for _, k := range keys {
		if p, err := jws.Verify(k); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return authz.Introspection{}, refusal("answer signature does not verify")
	}
	claims, err := decodeObject(payload)
	if err != nil {
		return authz.Introspection{}, err
	}
	if iss, ok := claims["iss"].(string); !ok || iss != i.cfg.issuer {
		return authz.Introspection{}, refusal("JWT iss is not the issuer")
	}
	if !audienceHas(claims["aud"], i.cfg.clientID) {
		return authz.Introspection{}, refusal("JWT aud does not hold the client id")
	}
	// The JWT's own time claims, when present (Meet's claims registry
	// checks them too).
	if v, present := claims["exp"]; present {
		if t, ok := numericDate(v); !ok || !now.Before(t) {
			return authz.Introspection{}, refusal("JWT exp is past or malformed")
		}
	}
	if v, present := claims["nbf"]; present {
		if t, ok := numericDate(v); !ok || now.Before(t) {
			return authz.Introspection{}, refusal("JWT nbf is future or malformed")
		}
	}
	ti, ok := claims["token_introspection"].(map[string]any)
	if !ok {
		return authz.Introspection{}, refusal("JWT token_introspection missing or not an object")
	}
	return i.checkIntrospection(ti, false, now)
}

// audienceHas reports whether aud is want or a list holding it.
func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// errUnknownKey: the answer names a key the JWKS does not hold and the JWKS
// was fetched too recently to fetch again. No verdict (503, not cached):
// after a rotation the next fetch will have the key.
var errUnknownKey = errors.New("jwks: no key for the answer's kid (refetch rate-limited)")

// jwksCache holds the provider's signing keys, fetched lazily, refetched
// when an answer names a kid it lacks, at most once per jwksMinRefetch.
type jwksCache struct {
	url    string
	alg    jose.SignatureAlgorithm
	client *http.Client
	now    func() time.Time

	// fetchMu serialises fetches, so that a rotation seen by many requests
	// at once costs one fetch.
	fetchMu sync.Mutex

	mu          sync.Mutex
	keys        []jose.JSONWebKey // public keys usable with alg
	loaded      bool
	lastAttempt time.Time
}

// keysFor returns the public keys that may have signed a JWS whose header
// names kid ("" names none: every usable key).
func (c *jwksCache) keysFor(ctx context.Context, kid string) ([]any, error) {
	if ks := c.match(kid); len(ks) > 0 {
		return ks, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	if ks := c.match(kid); len(ks) > 0 {
		return ks, nil
	}
	now := c.now()
	c.mu.Lock()
	loaded, last := c.loaded, c.lastAttempt
	if !last.IsZero() && now.Sub(last) < jwksMinRefetch && now.Sub(last) >= 0 {
		c.mu.Unlock()
		if !loaded {
			return nil, errors.New("jwks: unavailable (last fetch failed, refetch rate-limited)")
		}
		return nil, errUnknownKey
	}
	c.lastAttempt = now
	c.mu.Unlock()

	keys, err := c.fetch(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.keys, c.loaded = keys, true
	c.mu.Unlock()
	if ks := c.match(kid); len(ks) > 0 {
		return ks, nil
	}
	return nil, errors.New("jwks: no key for the answer's kid")
}

func (c *jwksCache) match(kid string) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []any
	for _, k := range c.keys {
		if kid == "" || k.KeyID == kid {
			out = append(out, k.Key)
		}
	}
	return out
}

// fetch gets the JWKS and keeps the keys usable with alg. A key that does
// not parse, or is for encryption, another algorithm or another key type,
// is skipped: one odd key does not make the others unusable.
func (c *jwksCache) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	defer resp.Body.Close()
	body, err := readBounded(resp.Body, maxJWKSBytes)
	if err != nil {
		return nil, fmt.Errorf("jwks (status %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks endpoint answered status %d", resp.StatusCode)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("jwks: not a JWK set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use == "enc" || (k.Algorithm != "" && k.Algorithm != string(c.alg)) {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		if !k.Valid() || !keyFits(k.Key, c.alg) {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// keyFits reports whether key can verify alg: the algorithm fixes the key
// type (and, for ECDSA, the curve), so a key of another type is never tried.
func keyFits(key any, alg jose.SignatureAlgorithm) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return k.Curve == elliptic.P256()
		case jose.ES384:
			return k.Curve == elliptic.P384()
		case jose.ES512:
			return k.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return k.N.BitLen() >= 2048
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}
