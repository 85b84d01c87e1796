// Package profiletest holds the behaviour rows of gatehouse's two Meet
// profiles, 2025.10 and 2026.08 (docs/design.md#profiles): one table, run by
// the decision core's tests and by both adapters' (gRPC over a real socket,
// forward auth over real HTTP), so that every row is checked through each.
//
// Each row names the part of the profile it pins down (Topic), a request, a
// token, and what each profile answers. Rows whose two answers differ are
// the profile's changes; rows whose answers agree pin what must not change.
package profiletest

import (
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Secrets of the two token kinds, and one no kind holds.
var (
	AppSecret   = []byte("profiletest-application-secret-of-32b")
	AddonSecret = []byte("profiletest-add-on-secret-of-32-bytes")
	OtherSecret = []byte("profiletest-nobody-s-secret-of-32-byt")
)

// Directory records.
const (
	ActiveUser   = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	InactiveUser = "11111111-2222-4333-8444-555555555555"
	UnknownUser  = "99999999-9999-4999-8999-999999999999"
	ActiveApp    = "meet-app"
	DisabledApp  = "disabled-app"
	UnknownApp   = "nobody-app"
)

// Paths of Meet's external API (routes.Meet).
const (
	RoomsPath = "/external-api/v1.0/rooms/"
	RoomPath  = "/external-api/v1.0/rooms/3fa85f64-5717-4562-b3fc-2c963f66afa6/"
	OtherPath = "/external-api/v1.0/other/"
)

// DefaultScope is the scope of the rows' tokens unless a row changes it.
const DefaultScope = "rooms:list rooms:retrieve"

// Directory returns the rows' directory: one active and one inactive user,
// one active and one disabled application.
func Directory() *userstore.Memory {
	return userstore.NewMemory(
		[]userstore.Record{{ID: ActiveUser, Active: true}, {ID: InactiveUser, Active: false}},
		[]userstore.Record{{ID: ActiveApp, Active: true}, {ID: DisabledApp, Active: false}},
	)
}

// Setup is the configuration a row runs under, beyond the defaults: Meet's
// table, the application key (HS256, issuer lasuite-meet) and, under
// 2026.08, the add-on key (HS256, issuer lasuite-meet, audience addons).
// Fields marked 2026.08 are not applied under 2025.10, which refuses them.
type Setup struct {
	// CheckApps is GATEHOUSE_CHECK_APPLICATIONS (2025.10; always on under
	// 2026.08).
	CheckApps bool
	// NoAddons leaves add-on tokens off (2026.08).
	NoAddons bool
	// SharedKey gives add-on tokens the application secret, so that the
	// application kind decodes them first (2026.08).
	SharedKey bool
	// AddonAlg is the add-on algorithm ("": HS256) (2026.08).
	AddonAlg string
	// AddonLeeway is the add-on kind's clock leeway (2026.08).
	AddonLeeway time.Duration
	// AddonIssuerOff turns the add-on kind's issuer check off (2026.08).
	AddonIssuerOff bool
	// AppRequireExp makes the application kind require exp.
	AppRequireExp bool
	// AppAudience is the application kind's audience (none by default).
	AppAudience string
	// AddonAudienceOff turns the add-on kind's audience check off (2026.08).
	AddonAudienceOff bool
	// Prefix is the scopes prefix (2026.08).
	Prefix string
}

// Options returns the authz.Options of a row under profile p.
func Options(p authz.Profile, s Setup, dir userstore.Directory, now func() time.Time) authz.Options {
	o := authz.Options{
		JWT: authz.JWTConfig{
			Secret:     AppSecret,
			Algorithm:  authz.DefaultAlgorithm,
			Issuer:     authz.DefaultIssuer,
			RequireExp: s.AppRequireExp,
			Audience:   s.AppAudience,
		},
		Directory: dir,
		Policy:    routes.NewSet(routes.Meet()),
		Profile:   p,
		Now:       now,
	}
	if p == authz.Profile202510 {
		o.CheckApplications = s.CheckApps
		return o
	}
	o.ScopesPrefix = s.Prefix
	if s.NoAddons {
		return o
	}
	o.Addons = authz.JWTConfig{
		Secret:    AddonSecret,
		Algorithm: authz.DefaultAddonsAlgorithm,
		Issuer:    authz.DefaultAddonsIssuer,
		Audience:  authz.DefaultAddonsAudience,
		Leeway:    s.AddonLeeway,
	}
	if s.SharedKey {
		o.Addons.Secret = AppSecret
	}
	if s.AddonAlg != "" {
		o.Addons.Algorithm = s.AddonAlg
	}
	if s.AddonIssuerOff {
		o.Addons.Issuer = ""
	}
	if s.AddonAudienceOff {
		o.Addons.Audience = ""
	}
	return o
}

// Token describes a token to sign: with Key (nil: the application secret)
// and Alg ("": HS256), the claims of Base changed by Set (a nil value
// deletes a claim). Times are seconds relative to the signing time.
type Token struct {
	Addon bool // Base: an add-on token rather than an application token
	Key   []byte
	Alg   string
	Set   map[string]any
	// Raw, when set, is the Authorization value itself (the other fields
	// are ignored); NoHeader sends none.
	Raw      string
	NoHeader bool
}

// Rel marks a time claim relative to the signing time, in seconds.
type Rel int64

// Authorization returns the Authorization header value of t at now ("" for
// none).
func (t Token) Authorization(now time.Time) (string, error) {
	if t.NoHeader {
		return "", nil
	}
	if t.Raw != "" {
		return t.Raw, nil
	}
	mc := jwt.MapClaims{
		"iat":     Rel(-60),
		"exp":     Rel(3600),
		"iss":     authz.DefaultIssuer,
		"user_id": ActiveUser,
		"scope":   DefaultScope,
	}
	if t.Addon {
		mc["aud"] = authz.DefaultAddonsAudience
	} else {
		mc["client_id"] = ActiveApp
		mc["delegated"] = true
	}
	for k, v := range t.Set {
		if v == nil {
			delete(mc, k)
			continue
		}
		mc[k] = v
	}
	for k, v := range mc {
		if r, ok := v.(Rel); ok {
			mc[k] = now.Unix() + int64(r)
		}
	}
	key := t.Key
	if key == nil {
		key = AppSecret
		if t.Addon {
			key = AddonSecret
		}
	}
	method := jwt.SigningMethodHS256
	switch t.Alg {
	case "HS384":
		method = jwt.SigningMethodHS384
	case "HS512":
		method = jwt.SigningMethodHS512
	}
	s, err := jwt.NewWithClaims(method, mc).SignedString(key)
	if err != nil {
		return "", err
	}
	return "Bearer " + s, nil
}

// Want is what one profile answers a row.
type Want struct {
	Status  int
	Reason  authz.Reason
	Message string // the deny's detail ("" for an allow)
	// Allow is the Allow header of a 405.
	Allow string
	// ClientID and Scope are the identity of an allow (the user is always
	// ActiveUser).
	ClientID, Scope string
}

// Row is one behaviour of the profiles.
type Row struct {
	Topic  string // the part of the profiles it pins down (see Topics)
	Name   string
	Setup  Setup
	Method string // "": GET
	Path   string // "": RoomsPath
	Token  Token
	// Want is indexed by authz.Profile: Want[authz.Profile202510] and
	// Want[authz.Profile202608].
	Want [2]Want
}

// Topics of the rows: the parts of the 2026.08 profile.
const (
	TopicOrder  = "order of the application checks"
	TopicKinds  = "token kinds tried in order"
	TopicAddon  = "add-on tokens"
	TopicScopes = "scopes"
	TopicMethod = "methods the API does not route"
)

// MethodOf and PathOf return the row's request method and path.
func (r *Row) MethodOf() string {
	if r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

// PathOf returns the row's request path.
func (r *Row) PathOf() string {
	if r.Path == "" {
		return RoomsPath
	}
	return r.Path
}

func allow(client, scope string) Want {
	return Want{Status: http.StatusOK, Reason: authz.ReasonAllowed, ClientID: client, Scope: scope}
}

func deny(status int, reason authz.Reason, msg string) Want {
	return Want{Status: status, Reason: reason, Message: msg}
}

// Answers shared by many rows.
var (
	allowApp      = allow(ActiveApp, DefaultScope)
	allowAddon    = allow("", DefaultScope)
	invalidToken  = deny(401, authz.ReasonInvalidToken, "Invalid token.")
	expired       = deny(401, authz.ReasonTokenExpired, "Token expired.")
	invalidClaims = deny(401, authz.ReasonInvalidClaims, "Invalid token claims.")
	invalidType   = deny(401, authz.ReasonInvalidTokenType, "Invalid token type.")
	appNotFound   = deny(401, authz.ReasonApplicationNotFound, "Application not found.")
	appDisabled   = deny(401, authz.ReasonApplicationDisabled, "Application is disabled.")
	userNotFound  = deny(401, authz.ReasonUserNotFound, "User not found.")
	userDisabled  = deny(401, authz.ReasonUserDisabled, "User account is disabled.")
	noScope       = deny(403, authz.ReasonNoScope, "Insufficient permissions.")
	needsList     = deny(403, authz.ReasonMissingScope, "Insufficient permissions. Required scope: rooms:list")
	unknownAction = deny(403, authz.ReasonUnknownAction, "Insufficient permissions. Unknown action.")
	missingCreds  = deny(401, authz.ReasonMissingCredentials, "Authentication credentials were not provided.")
)

func same(w Want) [2]Want               { return [2]Want{w, w} }
func differ(before, after Want) [2]Want { return [2]Want{before, after} }

func notAllowed(method, allow string) Want {
	return Want{Status: http.StatusMethodNotAllowed, Reason: authz.ReasonMethodNotAllowed,
		Message: `Method "` + method + `" not allowed.`, Allow: allow}
}

// The Allow headers of Meet's rooms routes.
const (
	AllowRooms = "GET, POST, HEAD, OPTIONS"
	AllowRoom  = "GET, HEAD, OPTIONS"
)

// Rows returns every row.
func Rows() []Row {
	checkApps := Setup{CheckApps: true}
	shared := Setup{SharedKey: true}
	sharedLenient := Setup{SharedKey: true, AddonLeeway: 2 * time.Hour}
	prefix := Setup{Prefix: "meet"}
	addon := func(set map[string]any) Token { return Token{Addon: true, Set: set} }
	app := func(set map[string]any) Token { return Token{Set: set} }
	return []Row{
		// The application token's checks, one defect at a time, then the
		// pairs of defects whose answer shows the order.
		{Topic: TopicOrder, Name: "valid application token", Token: app(nil), Want: same(allowApp)},
		{Topic: TopicOrder, Name: "client_id missing", Token: app(map[string]any{"client_id": nil}), Want: same(invalidClaims)},
		{Topic: TopicOrder, Name: "client_id not a string", Token: app(map[string]any{"client_id": 5}), Want: same(invalidClaims)},
		{Topic: TopicOrder, Name: "application unknown, checks on", Setup: checkApps,
			Token: app(map[string]any{"client_id": UnknownApp}), Want: same(appNotFound)},
		{Topic: TopicOrder, Name: "application unknown: the check is always on", Token: app(map[string]any{"client_id": UnknownApp}),
			Want: differ(allow(UnknownApp, DefaultScope), appNotFound)},
		{Topic: TopicOrder, Name: "application disabled: the check is always on", Token: app(map[string]any{"client_id": DisabledApp}),
			Want: differ(allow(DisabledApp, DefaultScope), appDisabled)},
		{Topic: TopicOrder, Name: "delegated false", Token: app(map[string]any{"delegated": false}), Want: same(invalidType)},
		{Topic: TopicOrder, Name: "delegated missing", Token: app(map[string]any{"delegated": nil}), Want: same(invalidType)},
		{Topic: TopicOrder, Name: "delegated the string true", Token: app(map[string]any{"delegated": "true"}), Want: same(invalidType)},
		{Topic: TopicOrder, Name: "user_id missing", Token: app(map[string]any{"user_id": nil}), Want: same(invalidClaims)},
		{Topic: TopicOrder, Name: "user unknown", Token: app(map[string]any{"user_id": UnknownUser}), Want: same(userNotFound)},
		{Topic: TopicOrder, Name: "user_id not a UUID", Token: app(map[string]any{"user_id": "alice"}), Want: same(userNotFound)},
		{Topic: TopicOrder, Name: "user inactive", Token: app(map[string]any{"user_id": InactiveUser}), Want: same(userDisabled)},
		{Topic: TopicOrder, Name: "user_id missing, application unknown: application first", Setup: checkApps,
			Token: app(map[string]any{"user_id": nil, "client_id": UnknownApp}), Want: differ(invalidClaims, appNotFound)},
		{Topic: TopicOrder, Name: "user_id missing, application disabled: application first", Setup: checkApps,
			Token: app(map[string]any{"user_id": nil, "client_id": DisabledApp}), Want: differ(invalidClaims, appDisabled)},
		{Topic: TopicOrder, Name: "delegated false, application disabled: application first", Setup: checkApps,
			Token: app(map[string]any{"delegated": false, "client_id": DisabledApp}), Want: differ(invalidType, appDisabled)},
		{Topic: TopicOrder, Name: "delegated false, user_id missing: delegated first", Token: app(map[string]any{"delegated": false, "user_id": nil}),
			Want: differ(invalidClaims, invalidType)},
		{Topic: TopicOrder, Name: "client_id missing, user_id missing", Token: app(map[string]any{"client_id": nil, "user_id": nil}),
			Want: same(invalidClaims)},
		{Topic: TopicOrder, Name: "client_id missing, delegated false: client_id first", Token: app(map[string]any{"client_id": nil, "delegated": false}),
			Want: same(invalidClaims)},
		{Topic: TopicOrder, Name: "delegated false, user unknown", Token: app(map[string]any{"delegated": false, "user_id": UnknownUser}),
			Want: same(invalidType)},
		{Topic: TopicOrder, Name: "application unknown, user unknown", Setup: checkApps,
			Token: app(map[string]any{"client_id": UnknownApp, "user_id": UnknownUser}), Want: same(appNotFound)},

		// Token kinds: a kind that cannot decode a token passes it on;
		// expiry and a wrong iss or aud stop at the kind that found them.
		{Topic: TopicKinds, Name: "add-on key: the application kind passes it on (bad signature)", Token: addon(nil),
			Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "no kind holds the key", Token: Token{Key: OtherSecret}, Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "add-on key, add-on tokens off", Setup: Setup{NoAddons: true}, Token: addon(nil), Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "malformed token", Token: Token{Raw: "Bearer not.a-token"}, Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "shared key: wrong algorithm passes on", Setup: Setup{SharedKey: true, AddonAlg: "HS512"},
			Token: Token{Addon: true, Key: AppSecret, Alg: "HS512"}, Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "shared key: nbf in the future passes on", Setup: sharedLenient,
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"nbf": Rel(600)}}, Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "shared key: iat in the future passes on", Setup: sharedLenient,
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"iat": Rel(600)}}, Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "shared key: a missing claim PyJWT requires passes on (exp)",
			Setup: Setup{SharedKey: true, AppRequireExp: true},
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"exp": nil}}, Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "shared key: a missing claim PyJWT requires passes on (iss)",
			Setup: Setup{SharedKey: true, AddonIssuerOff: true},
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"iss": nil}}, Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "shared key: a missing claim PyJWT requires passes on (aud)",
			Setup: Setup{SharedKey: true, AppAudience: "meet", AddonAudienceOff: true},
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"aud": nil}}, Want: differ(invalidToken, allowAddon)},
		{Topic: TopicKinds, Name: "shared key: a wrong aud stops at the application kind", Setup: shared,
			Token: Token{Addon: true, Key: AppSecret}, Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "shared key: expiry stops at the application kind", Setup: sharedLenient,
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"exp": Rel(-60)}}, Want: same(expired)},
		{Topic: TopicKinds, Name: "shared key: a wrong iss stops at the application kind",
			Setup: Setup{SharedKey: true, AddonIssuerOff: true},
			Token: Token{Addon: true, Key: AppSecret, Set: map[string]any{"iss": "someone-else"}}, Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "application token expired", Token: app(map[string]any{"exp": Rel(-60)}), Want: same(expired)},
		{Topic: TopicKinds, Name: "add-on token expired", Token: addon(map[string]any{"exp": Rel(-60)}), Want: differ(invalidToken, expired)},
		{Topic: TopicKinds, Name: "add-on token, wrong audience", Token: addon(map[string]any{"aud": "meet"}), Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "add-on token, wrong issuer", Token: addon(map[string]any{"iss": "someone-else"}), Want: same(invalidToken)},
		{Topic: TopicKinds, Name: "add-on token, no audience", Token: addon(map[string]any{"aud": nil}), Want: same(invalidToken)},

		// Add-on tokens: no client_id or delegated, the same user checks
		// and scope rules.
		{Topic: TopicAddon, Name: "add-on token with client_id and delegated false: neither checked nor forwarded",
			Token: addon(map[string]any{"client_id": UnknownApp, "delegated": false}), Want: differ(invalidToken, allowAddon)},
		{Topic: TopicAddon, Name: "add-on token, user_id missing", Token: addon(map[string]any{"user_id": nil}), Want: differ(invalidToken, invalidClaims)},
		{Topic: TopicAddon, Name: "add-on token, user unknown", Token: addon(map[string]any{"user_id": UnknownUser}), Want: differ(invalidToken, userNotFound)},
		{Topic: TopicAddon, Name: "add-on token, user inactive", Token: addon(map[string]any{"user_id": InactiveUser}), Want: differ(invalidToken, userDisabled)},
		{Topic: TopicAddon, Name: "add-on token without scope", Token: addon(map[string]any{"scope": nil}), Want: differ(invalidToken, noScope)},
		{Topic: TopicAddon, Name: "add-on token, scope lower-cased", Token: addon(map[string]any{"scope": "ROOMS:LIST"}),
			Want: differ(invalidToken, allow("", "rooms:list"))},
		{Topic: TopicAddon, Name: "add-on token, other scope", Token: addon(map[string]any{"scope": "rooms:create"}), Want: differ(invalidToken, needsList)},

		// Scopes.
		{Topic: TopicScopes, Name: "upper-case scope string", Token: app(map[string]any{"scope": "ROOMS:LIST"}),
			Want: differ(needsList, allow(ActiveApp, "rooms:list"))},
		{Topic: TopicScopes, Name: "mixed-case scope list", Token: app(map[string]any{"scope": []any{"Rooms:List", "rooms:create"}}),
			Want: differ(needsList, allow(ActiveApp, "rooms:list rooms:create"))},
		{Topic: TopicScopes, Name: "duplicates dropped", Token: app(map[string]any{"scope": "rooms:list ROOMS:LIST rooms:list"}),
			Want: differ(allow(ActiveApp, "rooms:list ROOMS:LIST rooms:list"), allow(ActiveApp, "rooms:list"))},
		{Topic: TopicScopes, Name: "prefix stripped", Setup: prefix, Token: app(map[string]any{"scope": "meet:rooms:list"}),
			Want: differ(needsList, allow(ActiveApp, "rooms:list"))},
		{Topic: TopicScopes, Name: "prefix stripped after lower-casing", Setup: prefix, Token: app(map[string]any{"scope": "MEET:Rooms:List"}),
			Want: differ(needsList, allow(ActiveApp, "rooms:list"))},
		{Topic: TopicScopes, Name: "prefix stripped once, with its colon only", Setup: prefix,
			Token: app(map[string]any{"scope": "meetrooms:list meet:meet:rooms:list"}), Want: same(needsList)},
		{Topic: TopicScopes, Name: "prefix not configured: kept", Token: app(map[string]any{"scope": "meet:rooms:list"}), Want: same(needsList)},
		{Topic: TopicScopes, Name: "without scope", Token: app(map[string]any{"scope": nil}), Want: same(noScope)},
		{Topic: TopicScopes, Name: "empty scope", Token: app(map[string]any{"scope": ""}), Want: same(noScope)},
		{Topic: TopicScopes, Name: "whitespace-only scope: no scope at all", Token: app(map[string]any{"scope": "  \t "}),
			Want: differ(needsList, noScope)},
		{Topic: TopicScopes, Name: "list with a non-string: grants nothing", Token: app(map[string]any{"scope": []any{1, "rooms:list"}}),
			Want: differ(allow(ActiveApp, "rooms:list"), needsList)},
		{Topic: TopicScopes, Name: "dict scope grants nothing", Token: app(map[string]any{"scope": map[string]any{"rooms:list": true}}),
			Want: same(needsList)},
		{Topic: TopicScopes, Name: "list element of several words grants nothing",
			Token: app(map[string]any{"scope": []any{"rooms:list rooms:create"}}), Want: same(needsList)},

		// Methods the API does not route, after authentication.
		{Topic: TopicMethod, Name: "PUT on the rooms list", Method: "PUT", Token: app(nil),
			Want: differ(unknownAction, notAllowed("PUT", AllowRooms))},
		{Topic: TopicMethod, Name: "PATCH on a room", Method: "PATCH", Path: RoomPath, Token: app(nil),
			Want: differ(unknownAction, notAllowed("PATCH", AllowRoom))},
		{Topic: TopicMethod, Name: "DELETE on a room", Method: "DELETE", Path: RoomPath, Token: app(nil),
			Want: differ(unknownAction, notAllowed("DELETE", AllowRoom))},
		{Topic: TopicMethod, Name: "lower-case delete on the rooms list", Method: "delete", Token: app(nil),
			Want: differ(unknownAction, notAllowed("DELETE", AllowRooms))},
		{Topic: TopicMethod, Name: "POST on a room", Method: "POST", Path: RoomPath, Token: app(nil),
			Want: differ(unknownAction, notAllowed("POST", AllowRoom))},
		{Topic: TopicMethod, Name: "an unknown method on the rooms list", Method: "BREW", Token: app(nil),
			Want: differ(unknownAction, notAllowed("BREW", AllowRooms))},
		{Topic: TopicMethod, Name: "PUT without scope: no scope is needed to be told 405", Method: "PUT",
			Token: app(map[string]any{"scope": nil}), Want: differ(unknownAction, notAllowed("PUT", AllowRooms))},
		{Topic: TopicMethod, Name: "PUT with an add-on token", Method: "PUT", Token: addon(nil),
			Want: differ(invalidToken, notAllowed("PUT", AllowRooms))},
		{Topic: TopicMethod, Name: "PUT without credentials: authentication first", Method: "PUT", Token: Token{NoHeader: true},
			Want: same(missingCreds)},
		{Topic: TopicMethod, Name: "PUT with an expired token: authentication first", Method: "PUT",
			Token: app(map[string]any{"exp": Rel(-60)}), Want: same(expired)},
		{Topic: TopicMethod, Name: "PUT by an unknown user: authentication first", Method: "PUT",
			Token: app(map[string]any{"user_id": UnknownUser}), Want: same(userNotFound)},
		{Topic: TopicMethod, Name: "OPTIONS on the rooms list: 403, not Meet's Required scope: None", Method: "OPTIONS",
			Token: app(nil), Want: same(unknownAction)},
		{Topic: TopicMethod, Name: "OPTIONS on a room", Method: "OPTIONS", Path: RoomPath, Token: app(nil), Want: same(unknownAction)},
		{Topic: TopicMethod, Name: "a path Meet does not route stays an unknown action", Method: "DELETE", Path: OtherPath,
			Token: app(nil), Want: same(unknownAction)},
		{Topic: TopicMethod, Name: "POST on the rooms list is routed", Method: "POST", Token: app(nil),
			Want: same(deny(403, authz.ReasonMissingScope, "Insufficient permissions. Required scope: rooms:create"))},
		{Topic: TopicMethod, Name: "HEAD on a room is routed", Method: "HEAD", Path: RoomPath, Token: app(nil), Want: same(allowApp)},
	}
}
