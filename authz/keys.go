package authz

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-authz/gatehouse/internal/boundedcache"
)

// KeysHeader is the first line that makes a key file a list of keys. A file
// without it is one key, exactly as before (its content, one trailing line
// ending removed), so that a key holding ':' or spaces keeps its meaning.
const KeysHeader = "# gatehouse keys v1"

// MaxKeys bounds the keys of one token kind: a token without kid costs one
// HMAC per key.
const MaxKeys = 8

// Key is one verification key of a token kind. ID is the kid that selects
// it; it is empty only for the single key of a file without KeysHeader.
type Key struct {
	ID     string
	Secret []byte
}

// ParseKeys reads a key file. Without KeysHeader on its first line, the file
// is one key: its content with one trailing "\n" or "\r\n" removed. With it,
// every other line is empty, a comment starting with '#', or "kid: key": the
// kid (no whitespace, no ':') before the first ':', the key after it with
// surrounding spaces and tabs removed. At most MaxKeys keys; a kid or a key
// given twice is refused. Errors never hold a key.
func ParseKeys(b []byte) ([]Key, error) {
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	if string(bytes.TrimSuffix(first, []byte("\r"))) != KeysHeader {
		b = stripNewline(b)
		if len(b) == 0 {
			return nil, errors.New("key file is empty")
		}
		return []Key{{Secret: b}}, nil
	}
	var keys []Key
	for n, line := range strings.Split(string(rest), "\n") {
		lineNo := n + 2
		line = strings.TrimRight(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		kid, secret, ok := strings.Cut(line, ":")
		kid, secret = strings.TrimSpace(kid), strings.Trim(secret, " \t")
		switch {
		case !ok:
			return nil, fmt.Errorf("key file line %d: want \"kid: key\"", lineNo)
		case kid == "" || strings.ContainsAny(kid, " \t"):
			return nil, fmt.Errorf("key file line %d: the kid is empty or holds whitespace", lineNo)
		case secret == "":
			return nil, fmt.Errorf("key file line %d: key %q is empty", lineNo, kid)
		}
		for _, k := range keys {
			if k.ID == kid {
				return nil, fmt.Errorf("key file line %d: kid %q given twice", lineNo, kid)
			}
			if string(k.Secret) == secret {
				return nil, fmt.Errorf("key file line %d: key %q repeats the key of %q", lineNo, kid, k.ID)
			}
		}
		if len(keys) == MaxKeys {
			return nil, fmt.Errorf("key file: more than %d keys", MaxKeys)
		}
		keys = append(keys, Key{ID: kid, Secret: []byte(secret)})
	}
	if len(keys) == 0 {
		return nil, errors.New("key file lists no key")
	}
	return keys, nil
}

// stripNewline removes one trailing "\n" or "\r\n", as the single-key file
// has always been read.
func stripNewline(b []byte) []byte {
	b, _ = bytes.CutSuffix(b, []byte("\n"))
	b, _ = bytes.CutSuffix(b, []byte("\r"))
	return b
}

// keySet is the keys of one token kind, swapped whole on reload.
type keySet struct {
	keys []hmacKey
	// byKid: tokens carrying a kid are checked against that key only. False
	// for the single key of a plain file, which ignores kid as PyJWT does.
	byKid bool
}

func newKeySet(keys []Key, alg string) (*keySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("JWT secret is empty")
	}
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("more than %d JWT keys", MaxKeys)
	}
	ks := &keySet{byKid: keys[0].ID != ""}
	for i, k := range keys {
		if (k.ID != "") != ks.byKid {
			return nil, errors.New("JWT keys: every key needs a kid when there are several")
		}
		for _, o := range keys[:i] {
			if ks.byKid && o.ID == k.ID {
				return nil, fmt.Errorf("JWT keys: kid %q given twice", k.ID)
			}
		}
		hk, err := newHMACKey(k.Secret, alg)
		if err != nil {
			return nil, fmt.Errorf("JWT key %d: %w", i+1, err)
		}
		hk.id, hk.pos, hk.label = k.ID, i, k.ID
		if k.ID == "" {
			hk.label = fmt.Sprintf("#%d", i+1)
		}
		ks.keys = append(ks.keys, hk)
	}
	return ks, nil
}

// keysOf returns cfg's keys: Keys, or Secret as the one key.
func keysOf(cfg JWTConfig) []Key {
	if len(cfg.Keys) > 0 {
		return cfg.Keys
	}
	if len(cfg.Secret) == 0 {
		return nil
	}
	return []Key{{Secret: cfg.Secret}}
}

// keyLabel names the key that verified c, for Decision.Key: its kid, or
// its position ("#1") when it has none. Never the key.
func (a *Authorizer) keyLabel(c *claims) string {
	ks := a.kinds[c.kind].v.keys.Load()
	if int(c.keyPos) >= len(ks.keys) {
		return "" // verified under keys since replaced
	}
	return ks.keys[c.keyPos].label
}

// SetKeys swaps in new keys for the application kind and, when addons is
// not nil, the add-on kind, then drops every cached verified token: a token
// verified under a removed key must be verified again. Nothing changes on
// error. It is safe while requests are being decided.
func (a *Authorizer) SetKeys(app, addons []Key) error {
	commit, err := a.PrepareKeys(app, addons)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareKeys checks new keys in full, as SetKeys takes them, and returns
// the swap to run, which cannot fail: a reload checks first and swaps only
// once everything it reads was accepted.
func (a *Authorizer) PrepareKeys(app, addons []Key) (commit func(), err error) {
	appSet, err := newKeySet(app, a.kinds[0].v.cfg.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	var addonSet *keySet
	if addons != nil {
		if len(a.kinds) < 2 {
			return nil, errors.New("authz: add-on tokens are off")
		}
		if addonSet, err = newKeySet(addons, a.kinds[1].v.cfg.Algorithm); err != nil {
			return nil, fmt.Errorf("authz: add-on tokens: %w", err)
		}
	}
	return func() {
		a.kinds[0].v.keys.Store(appSet)
		if addonSet != nil {
			a.kinds[1].v.keys.Store(addonSet)
		}
		// The keys are stored before the cache is replaced: a request that
		// sees the new cache verifies with the new keys; one that still
		// holds the old cache fills a cache nobody reads any more.
		if a.tokens.Load() != nil {
			a.tokens.Store(boundedcache.New[[sha256.Size]byte, *claims](a.tokenCacheSize))
		}
	}, nil
}

// match returns the key that signed signingInput (sig), or nil. With a kid
// in header (byKid sets only), only that key is tried.
func (ks *keySet) match(header map[string]any, signingInput string, sig []byte) *hmacKey {
	if ks.byKid {
		if kid, ok := header["kid"].(string); ok {
			for i := range ks.keys {
				if k := &ks.keys[i]; k.id == kid {
					if k.verify(signingInput, sig) {
						return k
					}
					return nil
				}
			}
			return nil
		}
	}
	for i := range ks.keys {
		if k := &ks.keys[i]; k.verify(signingInput, sig) {
			return k
		}
	}
	return nil
}
