package authz

import (
	"fmt"
	"time"
)

// JWTConfig configures token verification (docs/design.md#token-verification).
type JWTConfig struct {
	// Secret is the HMAC key. It is never logged or put in errors.
	Secret []byte
	// Keys, when set, replaces Secret: the kind's keys (at most MaxKeys,
	// see ParseKeys), tried as the token's kid says.
	Keys []Key
	// Algorithm is the one accepted "alg": HS256, HS384 or HS512.
	Algorithm string
	// Issuer, when non-empty, must equal the token's iss (which is then required).
	Issuer string
	// Audience, when non-empty, must be the token's aud or one of its list;
	// when empty, a token with a non-empty aud is refused.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// RequireExp refuses tokens without exp.
	RequireExp bool
}

// DefaultAlgorithm and DefaultIssuer are Meet's defaults.
const (
	DefaultAlgorithm = "HS256"
	DefaultIssuer    = "lasuite-meet"
)

// IDFormat says how user ids from tokens are normalised before lookup.
type IDFormat uint8

const (
	// IDFormatUUID normalises ids to canonical lower-case hyphenated UUIDs; an
	// id that is not a UUID is an unknown user.
	IDFormatUUID IDFormat = iota
	// IDFormatOpaque uses ids exactly as they are.
	IDFormatOpaque
)

// ParseIDFormat parses "uuid" or "opaque".
func ParseIDFormat(s string) (IDFormat, error) {
	switch s {
	case "uuid", "":
		return IDFormatUUID, nil
	case "opaque":
		return IDFormatOpaque, nil
	default:
		return 0, fmt.Errorf("unknown user id format %q (want uuid or opaque)", s)
	}
}

// String returns "uuid" or "opaque".
func (f IDFormat) String() string {
	if f == IDFormatOpaque {
		return "opaque"
	}
	return "uuid"
}

// Profile says which release line of Meet's external API gatehouse stands in
// front of (docs/design.md#profiles). It is a plain value of Options: two
// Authorizers with different profiles can live in one process.
type Profile uint8

const (
	// Profile202510 is Meet as it stood when delegation tokens were
	// introduced (October 2025): application tokens only, their claims
	// checked in the order user_id, client_id, delegated, then the optional
	// application lookup; scopes compared as written; a method the rooms
	// routes do not map is an unknown action (403). It is the zero value
	// and the default, so that no deployment changes without asking.
	Profile202510 Profile = iota
	// Profile202608 is Meet's release line of August 2026: token kinds tried
	// in order (application tokens, then add-on tokens); the application
	// checks always on and first (client_id, application, delegated, then
	// user_id); scopes lower-cased, de-duplicated and stripped of an optional
	// prefix; a method the rooms routes do not route answered 405.
	Profile202608
)

// Profile names, as GATEHOUSE_MEET_PROFILE spells them.
const (
	ProfileName202510 = "2025.10"
	ProfileName202608 = "2026.08"
)

// ParseProfile parses a profile name; "" is the default, 2025.10.
func ParseProfile(s string) (Profile, error) {
	switch s {
	case ProfileName202510, "":
		return Profile202510, nil
	case ProfileName202608:
		return Profile202608, nil
	default:
		return 0, fmt.Errorf("unknown Meet profile %q (want %s or %s)", s, ProfileName202510, ProfileName202608)
	}
}

// String returns the profile's name ("2025.10" or "2026.08").
func (p Profile) String() string {
	if p == Profile202608 {
		return ProfileName202608
	}
	return ProfileName202510
}

// Meet's defaults for add-on tokens (its ADDONS_TOKEN_* settings).
const (
	DefaultAddonsAlgorithm = DefaultAlgorithm
	DefaultAddonsIssuer    = DefaultIssuer
	DefaultAddonsAudience  = "addons"
)
