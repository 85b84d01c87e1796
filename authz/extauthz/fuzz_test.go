package extauthz

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// fuzzGoodAuth is the only credential the fuzz Decider accepts.
const fuzzGoodAuth = "Bearer good-token"

// FuzzRequestFromCheck feeds arbitrary bytes, as binary protobuf and as
// protojson, through RequestFromCheck and Check. Properties: Check never
// fails, its response always marshals, an OK happens only when the Decider
// allowed, and an allow's identity headers are exactly what the Decider said
// (taken from attacker-controlled request fields to exercise header value
// validation).
func FuzzRequestFromCheck(f *testing.F) {
	for _, name := range fixtureNames(f) {
		b, err := os.ReadFile(filepath.Join(fixturesDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		req := loadFixture(f, name)
		for _, auth := range []string{fuzzGoodAuth, "Bearer \xff\xfe", "bearer  good-token"} {
			setAuthorization(req, auth)
			// Non-UTF-8 only marshals where the fixture uses raw header_map
			// values; proto3 string fields refuse it.
			if bin, err := proto.Marshal(req); err == nil {
				f.Add(bin)
			}
			if js, err := protojson.Marshal(req); err == nil {
				f.Add(js)
			}
		}
	}
	f.Add([]byte(`{"attributes":{"request":{}}}`))
	f.Add([]byte(`{"attributes":{"request":{"http":{"headers":{"authorization":"Bearer good-token"},"host":"a\r\nb"}}}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		unmarshalers := []func([]byte, proto.Message) error{proto.Unmarshal, protojson.Unmarshal}
		for _, unmarshal := range unmarshalers {
			req := new(authv3.CheckRequest)
			if unmarshal(data, req) != nil {
				continue
			}
			fuzzOne(t, req)
		}
	})
}

func fuzzOne(t *testing.T, req *authv3.CheckRequest) {
	r, ok := RequestFromCheck(req)
	if ok != (req.GetAttributes().GetRequest().GetHttp() != nil) {
		t.Fatalf("RequestFromCheck ok = %v for http %v", ok, req.GetAttributes().GetRequest().GetHttp())
	}

	var allowed *authz.Identity
	srv := New(decideFunc(func(_ context.Context, r *authz.Request) authz.Decision {
		if r.Authorization != fuzzGoodAuth {
			return authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: http.StatusUnauthorized,
				Message: "Invalid token.", Challenge: authz.ChallengeInvalidToken}
		}
		id := authz.Identity{UserID: r.Host, ClientID: r.Method, Scope: r.Path}
		allowed = &id
		return authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: http.StatusOK, Identity: id}
	}), Options{Realm: r.Host})

	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check returned an error: %v", err)
	}
	if _, err := proto.Marshal(resp); err != nil {
		t.Fatalf("response does not marshal (would be a gRPC error): %v", err)
	}
	if resp.GetStatus().GetCode() != int32(codes.OK) {
		d := resp.GetDeniedResponse()
		if d == nil || d.GetStatus().GetCode() < 400 || resp.GetOkResponse() != nil {
			t.Fatalf("malformed deny: %v", resp)
		}
		return
	}
	if allowed == nil {
		t.Fatalf("OK although the Decider did not allow: %v", resp)
	}
	want := map[string]string{
		DefaultUserIDHeader: allowed.UserID, DefaultClientIDHeader: allowed.ClientID, DefaultScopeHeader: allowed.Scope,
	}
	ok2 := resp.GetOkResponse()
	set := map[string]string{}
	for _, o := range ok2.GetHeaders() {
		if !authz.HeaderSafe(o.GetHeader().GetValue()) {
			t.Fatalf("invalid header value sent: %q", o.GetHeader().GetValue())
		}
		set[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	for _, name := range ok2.GetHeadersToRemove() {
		if _, both := set[name]; both || want[name] != "" {
			t.Fatalf("%s removed although set to %q", name, want[name])
		}
		set[name] = ""
	}
	for name, v := range want {
		if got, present := set[name]; !present || got != v {
			t.Fatalf("%s = %q (present %v), want %q", name, got, present, v)
		}
	}
}
