package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	"github.com/gatehouse-authz/gatehouse/authz"
)

const (
	rotOldKey = "rotation-old-key-of-32-bytes-000"
	rotNewKey = "rotation-new-key-of-32-bytes-111"
)

// rotToken is a token for the active user signed with secret, with kid in
// its header unless empty; n makes it distinct (its own cache entry).
func rotToken(t *testing.T, secret, kid string, n int) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "iss": authz.DefaultIssuer,
		"user_id": activeUser, "client_id": "test-app", "delegated": true, "jti": fmt.Sprint(n),
	})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// TestKeyRotationUnderLoad walks the runbook over a real gRPC socket while
// clients keep checking: the key file goes old → old+new → new. Tokens of
// the old key (Meet before the switch, without kid) are checked from the
// start until the old key is removed; tokens of the new key (with kid) from
// the moment gatehouse has it. None of them may be refused; afterwards an
// old token is refused at once, though it was cached.
func TestKeyRotationUnderLoad(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.JWTKeysFile = filepath.Join(t.TempDir(), "jwt-keys")
	// The first file is today's single-key format, unchanged.
	if err := os.WriteFile(cfg.JWTKeysFile, []byte(rotOldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg, Options{reloadCheckInterval: 50 * time.Millisecond})

	oldToks := make([]string, 16)
	newToks := make([]string, 16)
	for i := range oldToks {
		oldToks[i] = rotToken(t, rotOldKey, "", i)
		newToks[i] = rotToken(t, rotNewKey, "new", i)
	}
	var sendOld, sendNew atomic.Bool
	sendOld.Store(true)
	var sent, refused atomic.Int64
	var firstRefusal atomic.Value
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := authv3.NewAuthorizationClient(r.conn)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				var toks []string
				if sendOld.Load() {
					toks = append(toks, oldToks[i%len(oldToks)])
				}
				if sendNew.Load() {
					toks = append(toks, newToks[i%len(newToks)])
				}
				for _, tok := range toks {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					resp, err := client.Check(cctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
						Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
							Method: "GET", Path: "/v1/rooms", Host: "api.example.com",
							Headers: map[string]string{":method": "GET", ":path": "/v1/rooms", ":authority": "api.example.com", "authorization": tok},
						}},
					}})
					cancel()
					if ctx.Err() != nil {
						return
					}
					sent.Add(1)
					if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
						refused.Add(1)
						firstRefusal.CompareAndSwap(nil, fmt.Sprintf("err %v, status %v", err, resp.GetStatus()))
					}
				}
			}
		}()
	}
	allowed := func(tok string) bool {
		return codes.Code(r.check(t, tok).GetStatus().GetCode()) == codes.OK
	}
	time.Sleep(200 * time.Millisecond) // load under the old key alone

	// 1. Add the new key to gatehouse.
	replaceFile(t, cfg.JWTKeysFile, []byte(authz.KeysHeader+"\nold: "+rotOldKey+"\nnew: "+rotNewKey+"\n"))
	pollUntil(t, "the new key loaded", func() bool { return allowed(newToks[0]) })
	// 2. Switch Meet: new tokens from now on, old ones still in use.
	sendNew.Store(true)
	time.Sleep(300 * time.Millisecond)
	// 3. After the token lifetime no old token is in use: remove the key.
	sendOld.Store(false)
	time.Sleep(50 * time.Millisecond) // old tokens in flight are answered
	replaceFile(t, cfg.JWTKeysFile, []byte(authz.KeysHeader+"\nnew: "+rotNewKey+"\n"))
	pollUntil(t, "the old key removed", func() bool { return !allowed(oldToks[0]) })
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()

	if n := refused.Load(); n != 0 {
		t.Fatalf("%d of %d valid tokens refused during the rotation; first: %v", n, sent.Load(), firstRefusal.Load())
	}
	if sent.Load() < 50 {
		t.Fatalf("only %d checks sent: not a walk under load", sent.Load())
	}
	for _, tok := range oldToks {
		if allowed(tok) {
			t.Fatal("a cached token of the removed key is still allowed")
		}
	}
	if got := metricValue(t, r, `gatehouse_config_reloads_total{result="success",what="keys"}`); got != 2 {
		t.Errorf("keys reloads %v, want 2", got)
	}
	if got := metricValue(t, r, `gatehouse_token_keys_total{key="new"}`); got <= 0 {
		t.Errorf("no decision counted under key new: %v", got)
	}
	if got := metricValue(t, r, `gatehouse_token_keys_total{key="#1"}`); got <= 0 {
		t.Errorf("no decision counted under the first file's key: %v", got)
	}
	if strings.Contains(r.logs.String(), rotOldKey) || strings.Contains(r.logs.String(), rotNewKey) {
		t.Error("a key appears in the logs")
	}
	t.Logf("%d checks during the rotation, none refused", sent.Load())
}

// TestKeysFileRefused: a bad key file at a reload keeps the keys in use.
func TestKeysFileRefused(t *testing.T) {
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	cfg.JWTKeysFile = filepath.Join(t.TempDir(), "jwt-keys")
	if err := os.WriteFile(cfg.JWTKeysFile, []byte(authz.KeysHeader+"\nold: "+rotOldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg, Options{reloadCheckInterval: 50 * time.Millisecond})
	tok := rotToken(t, rotOldKey, "old", 1)
	if codes.Code(r.check(t, tok).GetStatus().GetCode()) != codes.OK {
		t.Fatal("the old key is not in use")
	}
	replaceFile(t, cfg.JWTKeysFile, []byte(authz.KeysHeader+"\nold: "+rotOldKey+"\nold: "+rotNewKey+"\n"))
	pollUntil(t, "the bad file refused", func() bool {
		return metricValue(t, r, `gatehouse_config_reloads_total{result="failure",what="keys"}`) == 1
	})
	if codes.Code(r.check(t, tok).GetStatus().GetCode()) != codes.OK {
		t.Fatal("a refused key file changed the keys in use")
	}
	if strings.Contains(r.logs.String(), rotNewKey) {
		t.Error("a key appears in the logs")
	}
}
