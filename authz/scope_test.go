package authz

import (
	"strings"
	"testing"
	"unsafe"
)

// TestScopeClaim: the scope claim becomes the words it grants joined by single
// spaces (a string's words, a list's one-word elements), and a string already
// in that form is kept as is.
func TestScopeClaim(t *testing.T) {
	for _, tc := range []struct {
		claim any
		want  string
	}{
		{nil, ""},
		{"", ""},
		{"   ", ""},
		{"rooms:list", "rooms:list"},
		{"rooms:list rooms:create", "rooms:list rooms:create"},
		{" rooms:list", "rooms:list"},
		{"rooms:list ", "rooms:list"},
		{"rooms:list  rooms:create", "rooms:list rooms:create"},
		{"rooms:list\trooms:create\r\n", "rooms:list rooms:create"},
		{"rooms:list\u00a0rooms:create", "rooms:list rooms:create"}, // Unicode space, as Python's str.split()
		{"salle:liste é", "salle:liste é"},
		{[]any{}, ""},
		{[]any{"rooms:list", "rooms:create"}, "rooms:list rooms:create"},
		// A list element is one scope: one holding whitespace, an empty one or
		// a non-string matches no route's scope, so it grants nothing.
		{[]any{"rooms:list", "", " rooms:create  admin"}, "rooms:list"},
		{[]any{"rooms:list rooms:create"}, ""},
		{[]any{"rooms:list admin", "admin"}, "admin"},
		{[]any{"rooms:list", 7}, "rooms:list"},
		{[]any{nil, true, []any{"admin"}}, ""},
		{42, ""},
		{map[string]any{"rooms:list": true}, ""},
	} {
		if got := scopeClaim(tc.claim); got != tc.want {
			t.Errorf("scopeClaim(%#v) = %q, want %q", tc.claim, got, tc.want)
		}
	}
	// The fast path returns the decoded string itself, not a copy.
	in := "rooms:list rooms:create"
	if got := scopeClaim(in); unsafe.StringData(got) != unsafe.StringData(in) {
		t.Error("scopeClaim copied a string that was already normalised")
	}
}

// FuzzScopeClaim: the fast path agrees with strings.Fields on any input.
func FuzzScopeClaim(f *testing.F) {
	for _, s := range []string{"", "a", "a b", " a", "a  b", "a\tb", "a\u2003b", "\x85", "é é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := scopeClaim(s), strings.Join(strings.Fields(s), " "); got != want {
			t.Fatalf("scopeClaim(%q) = %q, want %q", s, got, want)
		}
	})
}

func TestHasScope(t *testing.T) {
	const scope = "rooms:list rooms:create admin"
	for want, has := range map[string]bool{
		"rooms:list":              true,
		"rooms:create":            true,
		"admin":                   true,
		"rooms":                   false,
		"rooms:lis":               false,
		"ooms:list":               false,
		"Admin":                   false,
		"rooms:list rooms:create": false, // one scope, never a run of them
	} {
		if got := hasScope(scope, want); got != has {
			t.Errorf("hasScope(%q, %q) = %v, want %v", scope, want, got, has)
		}
	}
	if hasScope("", "rooms:list") {
		t.Error("an empty scope grants rooms:list")
	}
	if n := testing.AllocsPerRun(100, func() { hasScope(scope, "admin") }); n != 0 {
		t.Errorf("hasScope allocates %v times", n)
	}
}

// TestClaimsSize guards the verified-token cache's memory: it holds one
// claims per distinct token, and 80 bytes is the allocator's size class the
// struct fits today.
func TestClaimsSize(t *testing.T) {
	if n := unsafe.Sizeof(claims{}); n > 80 {
		t.Fatalf("claims is %d bytes, over the 80-byte size class; keep the cache's per-token cost down", n)
	}
}

// TestClaimsInterned: cached tokens of one application share its client_id
// and scope strings instead of holding a copy each.
func TestClaimsInterned(t *testing.T) {
	f := newFixture(t, nil)
	first, deny := f.a.claims(sign(t, with(meetClaims(), "jti", "1")))
	if deny != nil {
		t.Fatalf("first token refused: %v", deny.Reason)
	}
	second, deny := f.a.claims(sign(t, with(meetClaims(), "jti", "2")))
	if deny != nil {
		t.Fatalf("second token refused: %v", deny.Reason)
	}
	if first == second {
		t.Fatal("two tokens share one claims value")
	}
	if unsafe.StringData(first.clientID) != unsafe.StringData(second.clientID) ||
		unsafe.StringData(first.scope) != unsafe.StringData(second.scope) {
		t.Error("two tokens of one application hold separate client_id or scope strings")
	}
}
