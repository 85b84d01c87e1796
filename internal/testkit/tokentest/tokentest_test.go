package tokentest

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestSign(t *testing.T) {
	secret := []byte("tokentest-secret")
	s := Sign(t, secret, "u", "c", "a b", jwt.MapClaims{"scope": nil, "jti": "x"})
	mc := jwt.MapClaims{}
	if _, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"})).ParseWithClaims(s, mc,
		func(*jwt.Token) (any, error) { return secret, nil }); err != nil {
		t.Fatal(err)
	}
	if mc["user_id"] != "u" || mc["client_id"] != "c" || mc["delegated"] != true || mc["jti"] != "x" {
		t.Fatalf("claims %v", mc)
	}
	if _, has := mc["scope"]; has {
		t.Fatal("a nil override must delete the claim")
	}
}
