// Package tokentest signs Meet-shaped delegation tokens for tests. It is
// apart from package testkit because it imports authz, whose own tests use
// testkit.
package tokentest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Sign signs, with secret and HS256, the claims Meet puts in a delegation
// token (user_id, client_id, delegated, scope, iss, iat a minute ago, exp in
// an hour) changed by override: a nil value deletes the claim, any other
// replaces or adds it.
func Sign(tb testing.TB, secret []byte, userID, clientID, scope string, override jwt.MapClaims) string {
	tb.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"user_id":   userID,
		"client_id": clientID,
		"delegated": true,
		"scope":     scope,
		"iss":       authz.DefaultIssuer,
		"iat":       now.Add(-time.Minute).Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
	for k, v := range override {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		tb.Fatalf("sign token: %v", err)
	}
	return s
}
