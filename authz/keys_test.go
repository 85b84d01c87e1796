package authz

import (
	"fmt"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

var (
	keyOld = []byte("the-old-key-of-thirty-two-bytes!")
	keyNew = []byte("the-new-key-of-thirty-two-bytes!")
)

// signKid signs mc with secret, with kid in the header unless it is empty.
func signKid(t testing.TB, secret []byte, kid string, mc jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, mc)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// TestParseKeysSingleFileUnchanged: a file without the header is one key,
// exactly as it was read before (one trailing line ending removed, ':' and
// spaces kept).
func TestParseKeysSingleFileUnchanged(t *testing.T) {
	for in, want := range map[string]string{
		"secret\n":                     "secret",
		"secret\r\n":                   "secret",
		"secret":                       "secret",
		"old: a key with ': ' in it\n": "old: a key with ': ' in it",
		" spaced \n\n":                 " spaced \n",
		"# a comment-looking key\n":    "# a comment-looking key",
		"# gatehouse keys v2\nk: v\n":  "# gatehouse keys v2\nk: v",
	} {
		keys, err := ParseKeys([]byte(in))
		if err != nil {
			t.Fatalf("ParseKeys(%q): %v", in, err)
		}
		if len(keys) != 1 || keys[0].ID != "" || string(keys[0].Secret) != want {
			t.Errorf("ParseKeys(%q) = %q, want one key %q", in, keys, want)
		}
	}
	for _, in := range []string{"", "\n"} {
		if _, err := ParseKeys([]byte(in)); err == nil {
			t.Errorf("ParseKeys(%q): an empty key was accepted", in)
		}
	}
}

func TestParseKeysMulti(t *testing.T) {
	in := KeysHeader + "\r\n\n# rotated 2026-11\nold: " + string(keyOld) + "\r\n  new :\t" + string(keyNew) + "  \nwith-colon: a:b c\n"
	keys, err := ParseKeys([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{"old", keyOld}, {"new", keyNew}, {"with-colon", []byte("a:b c")}}
	if fmt.Sprintf("%q", keys) != fmt.Sprintf("%q", want) {
		t.Fatalf("got %q, want %q", keys, want)
	}
}

func TestParseKeysRefused(t *testing.T) {
	var nine strings.Builder
	nine.WriteString(KeysHeader + "\n")
	for i := range MaxKeys + 1 {
		fmt.Fprintf(&nine, "k%d: secret-number-%d\n", i, i)
	}
	for name, in := range map[string]string{
		"more than 8":      nine.String(),
		"duplicate kid":    KeysHeader + "\na: s1\na: s2\n",
		"duplicate key":    KeysHeader + "\na: s1\nb: s1\n",
		"no colon":         KeysHeader + "\njust-a-key\n",
		"empty kid":        KeysHeader + "\n: s1\n",
		"kid with a space": KeysHeader + "\na b: s1\n",
		"empty key":        KeysHeader + "\na:  \n",
		"no key":           KeysHeader + "\n# nothing\n",
	} {
		_, err := ParseKeys([]byte(in))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "s1") || strings.Contains(err.Error(), "secret-number") {
			t.Errorf("%s: error %q holds a key", name, err)
		}
	}
	eight := strings.Join(strings.Split(nine.String(), "\n")[:MaxKeys+1], "\n")
	if keys, err := ParseKeys([]byte(eight)); err != nil || len(keys) != MaxKeys {
		t.Errorf("%d keys: %d, %v", MaxKeys, len(keys), err)
	}
}

func keysFixture(t testing.TB, keys ...Key) *fixture {
	t.Helper()
	return newFixture(t, func(o *Options) { o.JWT.Keys = keys })
}

// TestKidSelectsOneKey: a token with a kid is checked against that key only,
// one without against each key; the decision names the key.
func TestKidSelectsOneKey(t *testing.T) {
	f := keysFixture(t, Key{"old", keyOld}, Key{"new", keyNew})
	for _, tc := range []struct {
		name, kid string
		secret    []byte
		want      want
		key       string
	}{
		{"kid old, old key", "old", keyOld, wantAllow, "old"},
		{"kid new, new key", "new", keyNew, wantAllow, "new"},
		{"no kid, old key", "", keyOld, wantAllow, "old"},
		{"no kid, new key", "", keyNew, wantAllow, "new"},
		{"kid old signed with the new key", "old", keyNew, wantInvalid, ""},
		{"kid new signed with the old key", "new", keyOld, wantInvalid, ""},
		{"unknown kid signed with a loaded key", "other", keyNew, wantInvalid, ""},
		{"no kid, unknown key", "", testSecret, wantInvalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the second time from the cache
				d := f.decide(t, "Bearer "+signKid(t, tc.secret, tc.kid, meetClaims()))
				check(t, d, tc.want)
				if d.Key != tc.key {
					t.Errorf("Key = %q, want %q", d.Key, tc.key)
				}
			}
		})
	}
}

// TestSingleKeyIgnoresKid: a single key without kid keeps today's meaning:
// PyJWT ignores kid, so does gatehouse; the key is named by position.
func TestSingleKeyIgnoresKid(t *testing.T) {
	f := newFixture(t, nil)
	d := f.decide(t, "Bearer "+signKid(t, testSecret, "anything", meetClaims()))
	check(t, d, wantAllow)
	if d.Key != "#1" {
		t.Errorf("Key = %q, want #1", d.Key)
	}
}

// TestSetKeysDropsCachedTokens: after a rotation a token of a removed key
// is refused at once, though it was verified and cached before.
func TestSetKeysDropsCachedTokens(t *testing.T) {
	f := keysFixture(t, Key{"old", keyOld})
	oldTok := "Bearer " + signKid(t, keyOld, "", meetClaims())
	newTok := "Bearer " + signKid(t, keyNew, "new", meetClaims())
	check(t, f.decide(t, oldTok), wantAllow)
	check(t, f.decide(t, newTok), wantInvalid)
	if err := f.a.SetKeys([]Key{{"old", keyOld}, {"new", keyNew}}, nil); err != nil {
		t.Fatal(err)
	}
	check(t, f.decide(t, oldTok), wantAllow)
	check(t, f.decide(t, newTok), wantAllow)
	if err := f.a.SetKeys([]Key{{"new", keyNew}}, nil); err != nil {
		t.Fatal(err)
	}
	check(t, f.decide(t, oldTok), wantInvalid)
	check(t, f.decide(t, newTok), wantAllow)
	// A refused set changes nothing.
	if err := f.a.SetKeys([]Key{{"a", keyOld}, {"a", keyNew}}, nil); err == nil {
		t.Fatal("duplicate kids accepted")
	}
	check(t, f.decide(t, newTok), wantAllow)
	check(t, f.decide(t, oldTok), wantInvalid)
}

// TestAddonKeys: the add-on kind's keys are its own.
func TestAddonKeys(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Profile = Profile202608
		o.Addons = JWTConfig{Keys: []Key{{"a1", keyOld}, {"a2", keyNew}}, Algorithm: "HS256", Issuer: DefaultIssuer, Audience: DefaultAddonsAudience}
	})
	f.dir.set(userstore.User, activeUser, userstore.Active)
	mc := with(meetClaims(), "client_id", nil, "delegated", nil, "aud", DefaultAddonsAudience)
	for _, kid := range []string{"a1", "a2"} {
		secret := map[string][]byte{"a1": keyOld, "a2": keyNew}[kid]
		d := f.decide(t, "Bearer "+signKid(t, secret, kid, mc))
		if d.Result != Allow || d.Key != kid {
			t.Errorf("add-on token under %s: %v %q (%s)", kid, d.Result, d.Key, d.Message)
		}
	}
	if err := f.a.SetKeys([]Key{{Secret: testSecret}}, []Key{{"a2", keyNew}}); err != nil {
		t.Fatal(err)
	}
	if d := f.decide(t, "Bearer "+signKid(t, keyOld, "a1", mc)); d.Result == Allow {
		t.Error("add-on token of a removed key allowed")
	}
}

// BenchmarkKeys measures a token without kid verified by the last of n
// keys (n-1 failed HMACs first), cache off: the cost of each extra key.
func BenchmarkKeys(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			keys := make([]Key, n)
			for i := range keys {
				keys[i] = Key{fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("benchmark-key-number-%d-of-32-bytes", i))}
			}
			f := newFixture(b, func(o *Options) { o.JWT.Keys = keys; o.TokenCacheSize = -1 })
			tok := "Bearer " + signKid(b, keys[n-1].Secret, "", meetClaims())
			if d := f.decide(b, tok); d.Result != Allow {
				b.Fatal(d.Message)
			}
			b.ReportAllocs()
			for b.Loop() {
				f.decide(b, tok)
			}
		})
	}
}
