package routes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

func rule(t *testing.T, p authz.Policy, method, path string) authz.Rule {
	t.Helper()
	return p.Match(&authz.Request{Method: method, Path: path})
}

func TestMeetTable(t *testing.T) {
	meet := Meet()
	const (
		token = "/external-api/v1.0/application/token/"
		rooms = "/external-api/v1.0/rooms/"
		room  = "/external-api/v1.0/rooms/3fa85f64-5717-4562-b3fc-2c963f66afa6/"
	)
	public := authz.Rule{Public: true}
	scope := func(s string) authz.Rule { return authz.Rule{Scope: s} }
	unknown := authz.Rule{UnknownAction: true}
	auth := authz.Rule{}
	badPath := authz.Rule{Refuse: authz.RefusePath}
	badMethod := authz.Rule{Refuse: authz.RefuseMethod}
	for _, tc := range []struct {
		method, path string
		want         authz.Rule
	}{
		{"POST", token, public},
		{"POST", token + "?next=/x", public},
		{"post", token, public},
		{"POST", "/external-api/v1.0/application/token.json", public}, // DRF format suffix
		{"POST", "/external-api/v1.0/application/token.json/", public},
		{"POST", "/external-api/v1.0/application/tok%65n/", public}, // decoded, as Django routes it
		{"GET", token, unknown},                                     // only POST is public; Meet has no GET there
		{"OPTIONS", token, unknown},                                 // ditto
		{"POST", token + "x", unknown},                              // anything appended is not the public path
		{"POST", "/external-api/v1.0/application/token", unknown},
		{"POST", "/external-api/v1.0/application/token.JSON", unknown}, // formats are [a-z0-9]+
		{"POST", "/external-api/v1.0/application/token.", unknown},
		{"POST", "/external-api/v1.0/application/token//", badPath},
		{"POST", "/external-api/v1.0/application%2Ftoken/", badPath},
		{"POST", "/external-api/v1.0/application/token/;x", unknown},
		{"POST", "/external-api/v1.0/rooms/../application/token/", badPath},
		{"POST", "/external-api/v1.0/rooms/%2e%2E/application/token/", badPath},
		{"POST", "//external-api/v1.0/application/token/", badPath},
		{"POST", token + "#x", badPath},
		{"POST", "/EXTERNAL-API/v1.0/application/token/", auth}, // case-sensitive: outside the prefix
		{"GET", rooms, scope("rooms:list")},
		{"HEAD", rooms, scope("rooms:list")},
		{"GET", rooms + "?page=2&page_size=10", scope("rooms:list")},
		{"POST", rooms, scope("rooms:create")},
		{"PUT", rooms, unknown},
		{"PATCH", rooms, unknown},
		{"DELETE", rooms, unknown},
		{"OPTIONS", rooms, unknown},
		{"get", rooms, scope("rooms:list")}, // Django upper-cases the method
		{"pOsT", rooms, scope("rooms:create")},
		{"BREW", rooms, unknown},
		{"G ET", rooms, badMethod},
		{"", rooms, badMethod},
		// Spellings of the rooms list the backend routes to it.
		{"GET", "/external-api/v1.0/room%73/", scope("rooms:list")},
		{"POST", "/external-api/v1.0/room%73/", scope("rooms:create")},
		{"GET", "/external-api/v1.0/%72ooms/", scope("rooms:list")},
		{"GET", "/external-api/v1.0/rooms%2F", badPath},
		{"GET", rooms + "#frag", badPath},
		{"GET", "/external-api/v1.0/rooms.json", scope("rooms:list")},
		{"GET", "/external-api/v1.0/rooms.json/", scope("rooms:list")},
		{"GET", "/external-api/v1.0/rooms.api?x=1", scope("rooms:list")},
		{"POST", "/external-api/v1.0/rooms.json", scope("rooms:create")},
		{"PUT", "/external-api/v1.0/rooms.json", unknown},
		{"GET", room, scope("rooms:retrieve")},
		{"HEAD", room, scope("rooms:retrieve")},
		{"GET", room + "?x=1", scope("rooms:retrieve")},
		{"GET", "/external-api/v1.0/rooms/abc-def/", scope("rooms:retrieve")},
		{"GET", "/external-api/v1.0/rooms/abc.json", scope("rooms:retrieve")},
		{"GET", "/external-api/v1.0/rooms/abc.json/", scope("rooms:retrieve")},
		{"GET", "/external-api/v1.0/rooms/a.b/", scope("rooms:retrieve")}, // id "a", format "b"
		{"GET", "/external-api/v1.0/rooms/abc%2F", badPath},
		{"GET", "/external-api/v1.0/rooms/ab%63/", scope("rooms:retrieve")},
		{"POST", room, unknown},
		{"PUT", room, unknown},
		{"DELETE", room, unknown},
		{"delete", room, unknown},
		{"PUT", "/external-api/v1.0/rooms/abc.json", unknown},
		// Under the prefix, what the table does not name fails closed.
		{"GET", "/external-api/v1.0/rooms/a.b.c/", unknown},
		{"GET", "/external-api/v1.0/rooms/a/b/", unknown},
		{"GET", "/external-api/v1.0/rooms/abc", unknown},
		{"GET", "/external-api/v1.0/rooms", unknown},
		{"GET", "/external-api/v1.0/rooms.JSON", unknown},
		{"GET", "/external-api/v1.0/other/", unknown},
		{"GET", "/external-api/v1.0/", unknown},
		{"GET", "/external-api/v2.0/rooms/", unknown},
		{"GET", "/external-api/", unknown},
		// Outside it, authentication.
		{"GET", "/external-api", auth},
		{"GET", "/external-apix/", auth},
		{"GET", "/api/v1.0/rooms/", auth},
		{"GET", "/", auth},
		{"GET", "", badPath},
		{"OPTIONS", "*", badPath},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			if got := rule(t, meet, tc.method, tc.path); got != tc.want {
				t.Fatalf("rule = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestMeetBehaviour replays the behaviour matrix of Meet's external API tests
// through the whole decision core with the built-in table.
func TestMeetBehaviour(t *testing.T) {
	secret := []byte("meet-secret-for-tests")
	now := time.Unix(1_800_000_000, 0)
	const (
		user     = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
		inactive = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	)
	dir := userstore.NewMemory([]userstore.Record{{ID: user, Active: true}, {ID: inactive}}, nil)
	a, err := authz.New(authz.Options{
		JWT:       authz.JWTConfig{Secret: secret, Algorithm: "HS256", Issuer: authz.DefaultIssuer},
		Directory: dir,
		Policy:    NewSet(Meet()),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(uid string, scope any) string {
		mc := jwt.MapClaims{"iat": now.Unix(), "exp": now.Unix() + 3600, "iss": authz.DefaultIssuer,
			"user_id": uid, "client_id": "app", "delegated": true}
		if scope != nil {
			mc["scope"] = scope
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	const rooms = "/external-api/v1.0/rooms/"
	const room = rooms + "3fa85f64-5717-4562-b3fc-2c963f66afa6/"
	all := "rooms:list rooms:retrieve rooms:create"
	type want struct {
		status int
		msg    string
		scope  string // x-auth-scope on allow
	}
	denyScope := func(s string) want { return want{403, "Insufficient permissions. Required scope: " + s, ""} }
	for _, tc := range []struct {
		name, method, path, auth string
		want                     want
	}{
		{"list with scope", "GET", rooms, tok(user, "rooms:list"), want{200, "", "rooms:list"}},
		{"list without scope", "GET", rooms, tok(user, "rooms:retrieve"), denyScope("rooms:list")},
		{"list with no scope claim", "GET", rooms, tok(user, nil), want{403, "Insufficient permissions.", ""}},
		{"list with empty scope claim", "GET", rooms, tok(user, ""), want{403, "Insufficient permissions.", ""}},
		{"list with empty scope list", "GET", rooms, tok(user, []string{}), want{403, "Insufficient permissions.", ""}},
		{"list HEAD", "HEAD", rooms, tok(user, "rooms:list"), want{200, "", "rooms:list"}},
		{"list with query string", "GET", rooms + "?page=1", tok(user, "rooms:list"), want{200, "", "rooms:list"}},
		{"list with JSON list scope", "GET", rooms, tok(user, []string{"rooms:retrieve", "rooms:list"}), want{200, "", "rooms:retrieve rooms:list"}},
		{"list scope case differs", "GET", rooms, tok(user, "ROOMS:LIST"), denyScope("rooms:list")},
		{"list scope prefix only", "GET", rooms, tok(user, "rooms:lis rooms:list2"), denyScope("rooms:list")},
		{"retrieve with scope", "GET", room, tok(user, "rooms:retrieve"), want{200, "", "rooms:retrieve"}},
		{"retrieve without scope", "GET", room, tok(user, "rooms:list"), denyScope("rooms:retrieve")},
		{"create with scope", "POST", rooms, tok(user, "rooms:create"), want{200, "", "rooms:create"}},
		{"create without scope", "POST", rooms, tok(user, "rooms:list rooms:retrieve"), denyScope("rooms:create")},
		{"update is an unknown action", "PUT", room, tok(user, all), want{403, "Insufficient permissions. Unknown action.", ""}},
		{"delete is an unknown action", "DELETE", room, tok(user, all), want{403, "Insufficient permissions. Unknown action.", ""}},
		{"delete without credentials is a 401", "DELETE", room, "", want{401, "Authentication credentials were not provided.", ""}},
		{"inactive user with the right scope is a 401", "GET", rooms, tok(inactive, "rooms:list"), want{401, "User account is disabled.", ""}},
		{"token endpoint is public", "POST", "/external-api/v1.0/application/token/", "", want{200, "", ""}},
		{"token endpoint ignores bad tokens", "POST", "/external-api/v1.0/application/token/", "Bearer junk", want{200, "", ""}},
		{"path outside the prefix needs authentication only", "GET", "/api/v1.0/users/me/", tok(user, nil), want{200, "", ""}},
		{"path outside the prefix without token", "GET", "/api/v1.0/users/me/", "", want{401, "Authentication credentials were not provided.", ""}},
		{"unnamed path under the prefix is an unknown action", "GET", "/external-api/v1.0/other/", tok(user, nil),
			want{403, "Insufficient permissions. Unknown action.", ""}},
		{"unnamed path under the prefix needs credentials first", "GET", "/external-api/v1.0/other/", "",
			want{401, "Authentication credentials were not provided.", ""}},
		{"rooms.json is the list: needs its scope", "GET", "/external-api/v1.0/rooms.json", tok(user, nil), want{403, "Insufficient permissions.", ""}},
		{"rooms.json with the list scope", "GET", "/external-api/v1.0/rooms.json", tok(user, "rooms:list"), want{200, "", "rooms:list"}},
		{"PUT rooms.json is an unknown action", "PUT", "/external-api/v1.0/rooms.json", tok(user, all), want{403, "Insufficient permissions. Unknown action.", ""}},
		{"rooms/{id}.json is retrieve", "GET", "/external-api/v1.0/rooms/abc.json", tok(user, "rooms:list"), denyScope("rooms:retrieve")},
		{"encoded rooms list needs its scope", "GET", "/external-api/v1.0/room%73/", tok(user, nil), want{403, "Insufficient permissions.", ""}},
		{"encoded POST is create", "POST", "/external-api/v1.0/room%73/", tok(user, "rooms:list"), denyScope("rooms:create")},
		{"encoded slash is refused before the token", "GET", "/external-api/v1.0/rooms%2F", "", want{403, "Invalid request path.", ""}},
		{"encoded slash in an id is refused", "GET", "/external-api/v1.0/rooms/abc%2F", tok(user, all), want{403, "Invalid request path.", ""}},
		{"fragment is refused", "GET", "/external-api/v1.0/rooms/#frag", tok(user, nil), want{403, "Invalid request path.", ""}},
		{"dot segments are refused", "POST", "/external-api/v1.0/rooms/%2E%2e/application/token/", "", want{403, "Invalid request path.", ""}},
		{"lower-case method is judged upper-cased", "post", rooms, tok(user, "rooms:list"), denyScope("rooms:create")},
		{"method that is not a token is refused", "GE T", rooms, tok(user, all), want{403, "Invalid request method.", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Decide(context.Background(), &authz.Request{Method: tc.method, Path: tc.path, Authorization: tc.auth})
			gotScope := ""
			if d.Allowed() {
				gotScope = d.Identity.Scope
			}
			if d.Status != tc.want.status || d.Message != tc.want.msg || gotScope != tc.want.scope {
				t.Fatalf("got %d %q scope %q, want %d %q scope %q", d.Status, d.Message, gotScope,
					tc.want.status, tc.want.msg, tc.want.scope)
			}
			if d.Status == 403 && strings.HasPrefix(d.Message, "Insufficient permissions. Required") {
				s := strings.TrimPrefix(d.Message, "Insufficient permissions. Required scope: ")
				if got, want := d.ChallengeHeader(""), `Bearer error="insufficient_scope", scope="`+s+`"`; got != want {
					t.Fatalf("challenge = %q, want %q", got, want)
				}
			}
		})
	}
}

const exampleFile = `
routes:              # first match wins
  - path: /healthz
    methods: [GET]
    public: true
  - prefix: /api/things/
    actions:
      GET: things:read
      POST: things:write
  - regex: ^/api/v[0-9]+/widgets/[^/]+$
    scope: widgets:read
  - prefix: /admin/
    deny: true
  - prefix: /docs/
default: authenticate
`

func TestFile(t *testing.T) {
	tbl, err := Parse("routes.yaml", "routes", []byte(exampleFile))
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Name() != "routes" || tbl.Len() != 5 {
		t.Fatalf("table %q with %d routes", tbl.Name(), tbl.Len())
	}
	for _, tc := range []struct {
		method, path string
		want         authz.Rule
	}{
		{"GET", "/healthz", authz.Rule{Public: true}},
		{"GET", "/healthz?probe=1", authz.Rule{Public: true}},
		{"POST", "/healthz", authz.Rule{}},   // public for GET only: falls to default
		{"GET", "/healthz/", authz.Rule{}},   // exact
		{"GET", "/healthz%3F", authz.Rule{}}, // encoded
		{"GET", "/api/things/1", authz.Rule{Scope: "things:read"}},
		{"HEAD", "/api/things/1", authz.Rule{Scope: "things:read"}}, // HEAD follows GET
		{"POST", "/api/things/", authz.Rule{Scope: "things:write"}},
		{"DELETE", "/api/things/1", authz.Rule{UnknownAction: true}},
		{"GET", "/api/v2/widgets/w1", authz.Rule{Scope: "widgets:read"}},
		{"DELETE", "/api/v2/widgets/w1", authz.Rule{Scope: "widgets:read"}},
		{"GET", "/api/v2/widgets/w1/x", authz.Rule{}},
		{"GET", "/admin/users", authz.Rule{Deny: true}},
		{"GET", "/docs/index.html", authz.Rule{}},
		{"GET", "/elsewhere", authz.Rule{}},
	} {
		if got := rule(t, tbl, tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s: rule = %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}

	for def, want := range map[string]authz.Rule{
		"deny":   {Deny: true},
		"public": {Public: true},
	} {
		tbl, err := Parse("f.yaml", "f", []byte("routes: []\ndefault: "+def+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := rule(t, tbl, "GET", "/x"); got != want {
			t.Errorf("default %s: rule = %+v, want %+v", def, got, want)
		}
	}
}

// TestFileMethodCase: a rule limited to a method holds for every spelling of
// it, as Django upper-cases the method before dispatching.
func TestFileMethodCase(t *testing.T) {
	tbl, err := Parse("f.yaml", "f", []byte(`
routes:
  - prefix: /admin/
    methods: [DELETE]
    deny: true
  - path: /healthz
    methods: [GET]
    public: true
  - prefix: /api/
    actions: {GET: api:read}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		want         authz.Rule
	}{
		{"DELETE", "/admin/x", authz.Rule{Deny: true}},
		{"delete", "/admin/x", authz.Rule{Deny: true}},
		{"Delete", "/admin/x", authz.Rule{Deny: true}},
		{"dElEtE", "/admin/x", authz.Rule{Deny: true}},
		{"GET", "/admin/x", authz.Rule{}},
		{"DELETE ", "/admin/x", authz.Rule{Refuse: authz.RefuseMethod}},
		{"DEL	ETE", "/admin/x", authz.Rule{Refuse: authz.RefuseMethod}},
		{"get", "/healthz", authz.Rule{Public: true}},
		{"get", "/api/x", authz.Rule{Scope: "api:read"}},
		{"head", "/api/x", authz.Rule{Scope: "api:read"}},
		{"put", "/api/x", authz.Rule{UnknownAction: true}},
	} {
		if got := rule(t, tbl, tc.method, tc.path); got != tc.want {
			t.Errorf("%q %s: rule = %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
}

// TestFilePrefixes: unmatched requests get the default of the longest prefix
// they are under, else the file's default; include: meet brings Meet's
// routes and its fail-closed /external-api/ prefix, and "default: public"
// then lets every other path of Meet through without identity.
func TestFilePrefixes(t *testing.T) {
	tbl, err := Parse("f.yaml", "f", []byte(`
routes:
  - path: /api/open/
    public: true
prefixes:
  /api/: unknown-action
  /api/admin/: deny
  /api/docs/: authenticate
default: public
`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]authz.Rule{
		"/api/open/":      {Public: true},
		"/api/x":          {UnknownAction: true},
		"/api/admin/x":    {Deny: true},
		"/api/docs/x":     {},
		"/api%2Fx":        {Refuse: authz.RefusePath},
		"/ap%69/x":        {UnknownAction: true},
		"/api":            {Public: true},
		"/elsewhere":      {Public: true},
		"/x/../api/admin": {Refuse: authz.RefusePath},
	} {
		if got := rule(t, tbl, "GET", path); got != want {
			t.Errorf("GET %s: rule = %+v, want %+v", path, got, want)
		}
	}

	meetPublic, err := Parse("meet-public.yaml", "meet-public", []byte(`
include: meet
routes:
  - path: /external-api/v1.0/rooms/
    public: true      # cannot weaken an included route: Meet's comes first
  - path: /external-api/v1.0/health/
    public: true      # can add one under its prefix
default: public
`))
	if err != nil {
		t.Fatal(err)
	}
	meet := Meet()
	for _, tc := range []struct {
		method, path string
		want         authz.Rule
	}{
		{"POST", "/external-api/v1.0/application/token/", authz.Rule{Public: true}},
		{"GET", "/external-api/v1.0/rooms/", authz.Rule{Scope: "rooms:list"}},
		{"GET", "/external-api/v1.0/rooms.json", authz.Rule{Scope: "rooms:list"}},
		{"GET", "/external-api/v1.0/rooms/abc/", authz.Rule{Scope: "rooms:retrieve"}},
		{"GET", "/external-api/v1.0/other/", authz.Rule{UnknownAction: true}},
		{"GET", "/external-api/v1.0/health/", authz.Rule{Public: true}},
		{"GET", "/api/v1.0/rooms/", authz.Rule{Public: true}},
		{"GET", "/", authz.Rule{Public: true}},
		{"GET", "/external-api%2Fv1.0/rooms/", authz.Rule{Refuse: authz.RefusePath}},
		{"GET", "//external-api/v1.0/rooms/", authz.Rule{Refuse: authz.RefusePath}},
	} {
		if got := rule(t, meetPublic, tc.method, tc.path); got != tc.want {
			t.Errorf("include meet, default public: %s %s: rule = %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
		if tc.path == "/external-api/v1.0/health/" {
			continue
		}
		// Under the prefix, the same answers as the built-in table.
		if strings.HasPrefix(tc.path, MeetPrefix) || tc.want.Refuse != authz.RefuseNone {
			if got, want := rule(t, meetPublic, tc.method, tc.path), rule(t, meet, tc.method, tc.path); got != want {
				t.Errorf("%s %s: included %+v, built-in %+v", tc.method, tc.path, got, want)
			}
		}
	}
	if meetPublic.Name() != "meet-public" {
		t.Errorf("name %q", meetPublic.Name())
	}
}

func TestFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown top-level key", "routes: []\nextra: 1\n", `f.yaml:2: extra: unknown key`},
		{"unknown route key", "routes:\n  - path: /a\n    publik: true\n", `f.yaml:3: publik: unknown key`},
		{"unknown method", "routes:\n  - path: /a\n    methods: [GET, FETCH]\n", `f.yaml:3: methods: unknown method "FETCH"`},
		{"unknown action method", "routes:\n  - path: /a\n    actions:\n      GRAB: s\n", `f.yaml:4: actions: unknown method "GRAB"`},
		{"lower-case method", "routes:\n  - path: /a\n    methods: [get]\n", `f.yaml:3: methods: method "get" must be written in upper case (GET)`},
		{"mixed-case action", "routes:\n  - path: /a\n    actions:\n      Delete: s\n", `f.yaml:4: actions: method "Delete" must be written in upper case (DELETE)`},
		{"unknown include", "include: mete\nroutes: []\n", `f.yaml:1: include: unknown table "mete"`},
		{"prefix not absolute", "prefixes:\n  api/: deny\n", `f.yaml:2: prefixes: "api/" must start with /`},
		{"unknown prefix default", "prefixes:\n  /api/: allow\n", `f.yaml:2: prefixes./api/: unknown value "allow"`},
		{"duplicate prefix", "prefixes:\n  /api/: deny\n  /api/: public\n", `f.yaml:3: /api/: duplicate key`},
		{"prefix of the included table", "include: meet\nprefixes:\n  /external-api/: public\n", `prefixes: /external-api/ is already set by include: meet`},
		{"prefixes not a mapping", "prefixes: [/a/]\n", `f.yaml:1: prefixes: must be a mapping`},
		{"encoded path", "routes:\n  - path: /a%20b\n", `f.yaml:2: path: "/a%20b" holds a percent-escape: write the path decoded`},
		{"encoded prefix", "prefixes:\n  /a%2Fb/: deny\n", `f.yaml:2: prefixes: "/a%2Fb/" holds a percent-escape`},
		{"non-string scope", "routes:\n  - path: /a\n    actions:\n      GET: 5\n", `f.yaml:4: actions.GET: must be a string`},
		{"list scope", "routes:\n  - path: /a\n    scope: [a]\n", `f.yaml:3: scope: must be a string`},
		{"empty scope", "routes:\n  - path: /a\n    scope: \"\"\n", `f.yaml:3: scope: must not be empty`},
		{"invalid regex", "routes:\n  - regex: ^/a(\n", `f.yaml:2: regex: invalid`},
		{"unknown default", "routes: []\ndefault: allow\n", `f.yaml:2: default: unknown value "allow"`},
		{"no matcher", "routes:\n  - public: true\n", `f.yaml:2: route: needs exactly one of path, prefix, regex`},
		{"two matchers", "routes:\n  - path: /a\n    prefix: /b\n", `f.yaml:2: route: needs exactly one`},
		{"public and scope", "routes:\n  - path: /a\n    public: true\n    scope: s\n", `f.yaml:2: route: public, deny, scope and actions exclude each other`},
		{"public not a bool", "routes:\n  - path: /a\n    public: yes\n", `f.yaml:3: public: must be true or false`},
		{"relative path", "routes:\n  - path: a\n", `f.yaml:2: path: must start with /`},
		{"routes not a list", "routes: {}\n", `f.yaml:1: routes: must be a list`},
		{"duplicate key", "routes:\n  - path: /a\n    path: /b\n", `f.yaml:3: path: duplicate key`},
		{"empty actions", "routes:\n  - path: /a\n    actions: {}\n", `f.yaml:3: actions: must map at least one method`},
		{"empty methods", "routes:\n  - path: /a\n    methods: []\n", `f.yaml:3: methods: must be a non-empty list`},
		{"not yaml", "routes: [\n", `f.yaml`},
		{"empty file", "", `f.yaml: empty file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := Parse("f.yaml", "f", []byte(tc.content))
			if err == nil {
				t.Fatalf("parsed into %d routes, want error %q", tbl.Len(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "things.yaml")
	if err := os.WriteFile(good, []byte(exampleFile), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("routes:\n  - path: /a\n    public: maybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for spec, wantName := range map[string]string{"": "authenticate", "meet": "meet", "authenticate": "authenticate", good: "things"} {
		s, err := Resolve(spec)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", spec, err)
		}
		if s.Default().Name() != wantName {
			t.Fatalf("Resolve(%q) default = %q, want %q", spec, s.Default().Name(), wantName)
		}
	}
	if _, err := Resolve(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:3: public") {
		t.Fatalf("Resolve(bad) = %v, want an error naming file, line and key", err)
	}
	if _, err := Resolve(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("Resolve of a missing file succeeded")
	}
	if _, err := Resolve("mete"); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Fatalf("Resolve(typo) = %v, want an error naming the built-ins", err)
	}
}

func TestContextExtensions(t *testing.T) {
	things, err := Parse("things.yaml", "things", []byte(exampleFile))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(Meet(), things)
	match := func(method, path string, ext map[string]string) authz.Rule {
		return s.Match(&authz.Request{Method: method, Path: path, ContextExtensions: ext})
	}
	for _, tc := range []struct {
		name string
		ext  map[string]string
		path string
		want authz.Rule
	}{
		{"no extensions: default table", nil, "/external-api/v1.0/rooms/", authz.Rule{Scope: "rooms:list"}},
		{"unrelated extensions ignored", map[string]string{"virtual_host": "x"}, "/external-api/v1.0/rooms/", authz.Rule{Scope: "rooms:list"}},
		{"scope wins over path", map[string]string{ExtScope: "rooms:admin"}, "/external-api/v1.0/application/token/", authz.Rule{Scope: "rooms:admin"}},
		{"scope wins over table", map[string]string{ExtScope: "x:y", ExtTable: "things"}, "/healthz", authz.Rule{Scope: "x:y"}},
		{"table by name", map[string]string{ExtTable: "things"}, "/api/things/1", authz.Rule{Scope: "things:read"}},
		{"built-in authenticate table", map[string]string{ExtTable: "authenticate"}, "/external-api/v1.0/rooms/", authz.Rule{}},
		{"unknown table denies", map[string]string{ExtTable: "nope"}, "/healthz", authz.Rule{Deny: true}},
		{"blank scope ignored", map[string]string{ExtScope: " "}, "/external-api/v1.0/rooms/", authz.Rule{Scope: "rooms:list"}},
		{"scope does not rescue an undecidable path", map[string]string{ExtScope: "x:y"}, "/a%2Fb", authz.Rule{Refuse: authz.RefusePath}},
		{"nor does a table", map[string]string{ExtTable: "things"}, "/api/things/%2e%2e/x", authz.Rule{Refuse: authz.RefusePath}},
		{"table matches decoded", map[string]string{ExtTable: "meet"}, "/external-api/v1.0/room%73/", authz.Rule{Scope: "rooms:list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := match("GET", tc.path, tc.ext); got != tc.want {
				t.Fatalf("rule = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// BenchmarkMatch: a 50-route table, request matching the last route or none.
func BenchmarkMatch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("routes:\n")
	for i := range 48 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&sb, "  - path: /api/v1/resource%d/\n    actions: {GET: r%d:read, POST: r%d:write}\n", i, i, i)
		case 1:
			fmt.Fprintf(&sb, "  - prefix: /api/v1/prefix%d/\n    scope: p%d\n", i, i)
		case 2:
			fmt.Fprintf(&sb, "  - regex: ^/api/v1/items%d/[^/]+/$\n    actions: {GET: i%d:read}\n", i, i)
		}
	}
	sb.WriteString("  - regex: ^/api/v2/things/[^/.]+/$\n    actions: {GET: things:read}\n")
	sb.WriteString("  - prefix: /api/v2/\n    scope: v2\n")
	tbl, err := Parse("bench.yaml", "bench", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	if tbl.Len() != 50 {
		b.Fatalf("%d routes", tbl.Len())
	}
	set := NewSet(tbl)
	for name, req := range map[string]*authz.Request{
		"last-route": {Method: "GET", Path: "/api/v2/other?x=1"},
		"regex-49":   {Method: "GET", Path: "/api/v2/things/abc/"},
		"no-match":   {Method: "GET", Path: "/nothing/here"},
		"first":      {Method: "GET", Path: "/api/v1/resource0/"},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = set.Match(req)
			}
		})
	}
	for name, path := range map[string]string{
		"meet":         "/external-api/v1.0/rooms/3fa85f64-5717-4562-b3fc-2c963f66afa6/",
		"meet-encoded": "/external-api/v1.0/room%73/3fa85f64-5717-4562-b3fc-2c963f66afa6/",
		"meet-unnamed": "/external-api/v1.0/other/",
	} {
		b.Run(name, func(b *testing.B) {
			s := NewSet(Meet())
			req := &authz.Request{Method: "GET", Path: path}
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Match(req)
			}
		})
	}
}
