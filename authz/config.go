package authz

import (
	"fmt"
	"time"
)

// JWTConfig configures token verification (DESIGN §2.1).
type JWTConfig struct {
	// Secret is the HMAC key. It is never logged or put in errors.
	Secret []byte
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
