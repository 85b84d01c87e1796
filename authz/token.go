package authz

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenSpec describes a delegation token to issue, as Meet's /token endpoint
// would for an application acting on behalf of a user.
type TokenSpec struct {
	UserID   string
	ClientID string
	// Scope is space-separated; empty means no scope claim.
	Scope string
	// TTL is the token's lifetime (0: one hour, Meet's default).
	TTL time.Duration
	// Now is the issue time (zero: time.Now()).
	Now time.Time
	// Addon issues an add-on token instead, as Meet's add-on service does
	// (2026.08): no client_id and no delegated claim, ClientID unused; sign
	// it with the add-on key, issuer and audience.
	Addon bool
}

// TokenResponse is Meet's /token response body.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// IssueToken signs a token for spec with cfg's secret, algorithm, issuer and
// audience, with the claims Meet puts in its delegation tokens: iat, exp,
// user_id, client_id, delegated=true, and iss, aud and scope when set. An
// add-on token (spec.Addon) has the same claims but client_id and delegated.
func IssueToken(cfg JWTConfig, spec TokenSpec) (TokenResponse, error) {
	method, err := signingMethod(cfg.Algorithm)
	if err != nil {
		return TokenResponse{}, err
	}
	if len(cfg.Secret) == 0 {
		return TokenResponse{}, errors.New("issue token: empty secret")
	}
	switch {
	case spec.UserID == "":
		return TokenResponse{}, errors.New("issue token: a user id is required")
	case spec.ClientID == "" && !spec.Addon:
		return TokenResponse{}, errors.New("issue token: a client id is required")
	case spec.ClientID != "" && spec.Addon:
		return TokenResponse{}, errors.New("issue token: an add-on token has no client id")
	}
	ttl := spec.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	now := spec.Now
	if now.IsZero() {
		now = time.Now()
	}
	claims := jwt.MapClaims{
		"iat":     now.Unix(),
		"exp":     now.Add(ttl).Unix(),
		"user_id": spec.UserID,
	}
	if !spec.Addon {
		claims["client_id"] = spec.ClientID
		claims["delegated"] = true
	}
	if cfg.Issuer != "" {
		claims["iss"] = cfg.Issuer
	}
	if cfg.Audience != "" {
		claims["aud"] = cfg.Audience
	}
	if spec.Scope != "" {
		claims["scope"] = spec.Scope
	}
	signed, err := jwt.NewWithClaims(method, claims).SignedString(cfg.Secret)
	if err != nil {
		return TokenResponse{}, fmt.Errorf("issue token: sign: %w", err)
	}
	return TokenResponse{
		AccessToken: signed,
		TokenType:   "Bearer",
		ExpiresIn:   int(ttl / time.Second),
		Scope:       spec.Scope,
	}, nil
}

// signingMethod returns the HMAC method for alg, refusing everything else
// (notably "none" and asymmetric algorithms, which Meet's HMAC secret cannot
// verify safely).
func signingMethod(alg string) (*jwt.SigningMethodHMAC, error) {
	switch alg {
	case "HS256":
		return jwt.SigningMethodHS256, nil
	case "HS384":
		return jwt.SigningMethodHS384, nil
	case "HS512":
		return jwt.SigningMethodHS512, nil
	default:
		return nil, fmt.Errorf("unsupported JWT algorithm %q (want HS256, HS384 or HS512)", alg)
	}
}
