package authz

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRoutePath(t *testing.T) {
	const rooms = "/external-api/v1.0/rooms/"
	for _, tc := range []struct {
		target, want string // want "" : refused
	}{
		// Decided: decoded once, query cut first.
		{rooms, rooms},
		{"/", "/"},
		{rooms + "?page=2&x=%2F..%00", rooms},
		{"/external-api/v1.0/room%73/", rooms},
		{"/external-api/v1.0/ROOM%53/", "/external-api/v1.0/ROOMS/"}, // case kept
		{"/a%20b/", "/a b/"},
		{"/caf%C3%A9/", "/café/"},
		{"/café/", "/café/"},
		{"/100%25/", "/100%/"}, // a decoded "%" is data, not decoded again
		{"/a%2573/", "/a%73/"}, // once only
		{"/a%3Fb/", "/a?b/"},   // an encoded "?" is part of the path
		{"/a%23b/", "/a#b/"},   // so is an encoded "#"
		{"/a;b=c/", "/a;b=c/"}, // Django keeps parameters
		{"/.well-known/x", "/.well-known/x"},
		{"/a/...", "/a/..."},
		{"/a/.b/", "/a/.b/"},
		// Refused.
		{"", ""},
		{"*", ""},
		{"http://h/x", ""},
		{"?x", ""},
		{"/a%2Fb/", ""},
		{"/a%2fb/", ""},
		{"/a%5Cb/", ""},
		{"/a%5cb/", ""},
		{`/a\b/`, ""},
		{"/a%00/", ""},
		{"/a\x00/", ""},
		{"/a%0A/", ""},
		{"/a%0d/", ""},
		{"/a\t/", ""},
		{"/a%7F/", ""},
		{"/a\x7f/", ""},
		{rooms + "#frag", ""},
		{rooms + "?q#frag", ""},
		{"#", ""},
		{"/a/%", ""},
		{"/a/%2", ""},
		{"/a/%zz/", ""},
		{"/a/%2g/", ""},
		{"/a/%%30/", ""},
		{"/a/./b", ""},
		{"/a/../b", ""},
		{"/a/.", ""},
		{"/a/..", ""},
		{"/..", ""},
		{"/a/%2e/b", ""},
		{"/a/%2E%2E/b", ""},
		{"/a/.%2e/b", ""},
		{"/a/%2e./b", ""},
		{"/a/%2E%2e/", ""},
		{"//a", ""},
		{"/a//b", ""},
		{"/a/%C0%AF/", ""}, // overlong "/"
		{"/a/%FF/", ""},
		{"/a/\xff/", ""},
		{"/a/%C3/", ""},
	} {
		got, ok := RoutePath(tc.target)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("RoutePath(%q) = %q, %v; want %q, %v", tc.target, got, ok, tc.want, tc.want != "")
		}
	}
}

func TestRouteTargetMethods(t *testing.T) {
	for m, want := range map[string]Refusal{
		"GET": RefuseNone, "get": RefuseNone, "DeLeTe": RefuseNone, "PROPFIND": RefuseNone, "M-SEARCH": RefuseNone,
		"": RefuseMethod, "GET ": RefuseMethod, "G(T": RefuseMethod, "GET\x00": RefuseMethod, "GÉT": RefuseMethod,
	} {
		if _, got := RouteTarget(&Request{Method: m, Path: "/"}); got != want {
			t.Errorf("RouteTarget(method %q) refusal = %v, want %v", m, got, want)
		}
	}
	if _, got := RouteTarget(&Request{Method: "GET", Path: "/a%2Fb"}); got != RefusePath {
		t.Errorf("encoded slash: refusal %v, want RefusePath", got)
	}
}

// TestRoutePathDoesNotAllocate: the hot path (no "%") costs no allocation.
func TestRoutePathDoesNotAllocate(t *testing.T) {
	req := &Request{Method: "GET", Path: "/external-api/v1.0/rooms/3fa85f64-5717-4562-b3fc-2c963f66afa6/?page=2"}
	if n := testing.AllocsPerRun(100, func() { _, _ = RouteTarget(req) }); n != 0 {
		t.Fatalf("RouteTarget allocates %v times per call", n)
	}
}

// TestRefusedBeforeCredentials: a refused request is a 403 with a detail of
// its own, before any token check and whatever the token.
func TestRefusedBeforeCredentials(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Policy = refusingPolicy{} })
	good := "Bearer " + sign(t, meetClaims())
	for _, tc := range []struct {
		method, path, auth, detail string
	}{
		{"GET", "/a%2Fb", "", "Invalid request path."},
		{"GET", "/a/../b", good, "Invalid request path."},
		{"G T", "/a", good, "Invalid request method."},
	} {
		d := f.a.Decide(context.Background(), &Request{Method: tc.method, Path: tc.path, Authorization: tc.auth})
		if d.Result != Deny || d.Status != http.StatusForbidden || d.Reason != ReasonBadRequest ||
			d.Message != tc.detail || d.ChallengeHeader("") != "" || (d.Identity != Identity{}) {
			t.Errorf("%s %s: got %+v, want a 403 %q without challenge or identity", tc.method, tc.path, d, tc.detail)
		}
	}
	// The same request with a decidable path is judged as usual.
	if d := f.a.Decide(context.Background(), &Request{Method: "get", Path: "/a%20b", Authorization: good}); !d.Allowed() {
		t.Errorf("decidable request refused: %+v", d)
	}
}

// refusingPolicy is what a path-matching policy does first.
type refusingPolicy struct{}

func (refusingPolicy) Match(req *Request) Rule {
	_, refuse := RouteTarget(req)
	return Rule{Refuse: refuse}
}

// FuzzRoutePath: a decided path is what a once-decoding server sees, and
// holds nothing RoutePath promises to refuse.
func FuzzRoutePath(f *testing.F) {
	for _, s := range []string{"/", "/external-api/v1.0/room%73/?x=1", "/a%2Fb", "/a/%2e%2E/", "/caf%C3%A9", "//x", "/a#b", "/a%25"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		path, ok := RoutePath(target)
		if !ok {
			return
		}
		raw, _, _ := strings.Cut(target, "?")
		want, err := url.PathUnescape(raw)
		if err != nil || path != want {
			t.Fatalf("RoutePath(%q) = %q; PathUnescape gives %q, %v", target, path, want, err)
		}
		if strings.Contains(target, "#") || !strings.HasPrefix(path, "/") || !utf8.ValidString(path) ||
			strings.ContainsFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
			t.Fatalf("RoutePath(%q) = %q: undecidable path accepted", target, path)
		}
		if strings.Count(raw, "/") != strings.Count(path, "/") {
			t.Fatalf("RoutePath(%q) = %q: decoding made a separator", target, path)
		}
		for i, seg := range strings.Split(path[1:], "/") {
			if seg == "." || seg == ".." || seg == "" && i != strings.Count(path, "/")-1 {
				t.Fatalf("RoutePath(%q) = %q: dot or empty segment accepted", target, path)
			}
		}
	})
}

// BenchmarkRouteTarget: the per-request cost of judging method and path.
func BenchmarkRouteTarget(b *testing.B) {
	for name, path := range map[string]string{
		"plain":   "/external-api/v1.0/rooms/3fa85f64-5717-4562-b3fc-2c963f66afa6/?page=2",
		"encoded": "/external-api/v1.0/room%73/3fa85f64-5717-4562-b3fc-2c963f66afa6/?page=2",
	} {
		b.Run(name, func(b *testing.B) {
			req := &Request{Method: "GET", Path: path}
			b.ReportAllocs()
			for b.Loop() {
				if _, r := RouteTarget(req); r != RefuseNone {
					b.Fatal(r)
				}
			}
		})
	}
}
