package extauthz

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
)

// TestEncodeFieldNumbers checks encode.go's field numbers against the
// generated descriptors.
func TestEncodeFieldNumbers(t *testing.T) {
	num := func(m proto.Message, name protoreflect.Name) protowire.Number {
		fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
		if fd == nil {
			t.Fatalf("%s has no field %s", m.ProtoReflect().Descriptor().FullName(), name)
		}
		return fd.Number()
	}
	entry := (&structpb.Struct{}).ProtoReflect().Descriptor().Fields().ByName("fields")
	for _, c := range []struct {
		got, want protowire.Number
		name      string
	}{
		{fieldResponseStatus, num(&authv3.CheckResponse{}, "status"), "CheckResponse.status"},
		{fieldResponseDenied, num(&authv3.CheckResponse{}, "denied_response"), "CheckResponse.denied_response"},
		{fieldResponseOK, num(&authv3.CheckResponse{}, "ok_response"), "CheckResponse.ok_response"},
		{fieldResponseMetadata, num(&authv3.CheckResponse{}, "dynamic_metadata"), "CheckResponse.dynamic_metadata"},
		{fieldStatusCode, num(&rpcstatus.Status{}, "code"), "Status.code"},
		{fieldStatusCode, num(&typev3.HttpStatus{}, "code"), "HttpStatus.code"},
		{fieldDeniedStatus, num(&authv3.DeniedHttpResponse{}, "status"), "DeniedHttpResponse.status"},
		{fieldDeniedHeaders, num(&authv3.DeniedHttpResponse{}, "headers"), "DeniedHttpResponse.headers"},
		{fieldDeniedBody, num(&authv3.DeniedHttpResponse{}, "body"), "DeniedHttpResponse.body"},
		{fieldOKHeaders, num(&authv3.OkHttpResponse{}, "headers"), "OkHttpResponse.headers"},
		{fieldOKHeadersToRemove, num(&authv3.OkHttpResponse{}, "headers_to_remove"), "OkHttpResponse.headers_to_remove"},
		{fieldOptionHeader, num(&corev3.HeaderValueOption{}, "header"), "HeaderValueOption.header"},
		{fieldOptionAppendAction, num(&corev3.HeaderValueOption{}, "append_action"), "HeaderValueOption.append_action"},
		{fieldHeaderKey, num(&corev3.HeaderValue{}, "key"), "HeaderValue.key"},
		{fieldHeaderValue, num(&corev3.HeaderValue{}, "value"), "HeaderValue.value"},
		{fieldStructFields, entry.Number(), "Struct.fields"},
		{fieldEntryKey, entry.MapKey().Number(), "Struct.fields key"},
		{fieldEntryValue, entry.MapValue().Number(), "Struct.fields value"},
		{fieldValueString, num(&structpb.Value{}, "string_value"), "Value.string_value"},
	} {
		if c.got != c.want {
			t.Errorf("%s: encode.go uses %d, the descriptor says %d", c.name, c.got, c.want)
		}
	}
}

// encodeServers are the configurations the differential tests encode with:
// the defaults, a realm to quote, two identity headers of the same name,
// and answers without dynamic metadata.
func encodeServers() map[string]*Server {
	return map[string]*Server{
		"default":     New(allowAll, Options{}),
		"realm":       New(allowAll, Options{Realm: `gate"house \ é`}),
		"same-names":  New(allowAll, Options{UserIDHeader: "X-Identity", ClientIDHeader: "x-identity", ScopeHeader: "X-Scope"}),
		"no-metadata": New(allowAll, Options{OmitDynamicMetadata: true}),
	}
}

// compareEncoded holds the encoder to its reference for one decision: the
// hand-encoded bytes unmarshal to a CheckResponse equal to the one
// allowCheckResponse or denyCheckResponse builds, and are byte for byte what
// a deterministic proto.Marshal writes for it.
func compareEncoded(t *testing.T, s *Server, d authz.Decision) {
	t.Helper()
	d = sendable(d)
	want := s.response(&d)
	wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatalf("the reference does not marshal: %v", err)
	}
	got := s.enc.encode(&d).Bytes
	resp := new(authv3.CheckResponse)
	if err := proto.Unmarshal(got, resp); err != nil {
		t.Fatalf("encoded answer does not unmarshal: %v\n%x", err, got)
	}
	if !proto.Equal(resp, want) {
		t.Fatalf("decision %+v\nencoded %v\nwant    %v", d, resp, want)
	}
	if !bytes.Equal(got, wantBytes) {
		t.Fatalf("decision %+v: encoded\n%x\nproto.Marshal\n%x", d, got, wantBytes)
	}
	if len(got) != cap(got) {
		t.Fatalf("size pass said %d bytes, wrote %d", cap(got), len(got))
	}
	if (resp.GetStatus().GetCode() == 0) != (d.Allowed() && resp.GetOkResponse() != nil) {
		t.Fatalf("decision %+v answered with status %d", d, resp.GetStatus().GetCode())
	}
}

// randomString returns one of the strings that stress the encoder: empty,
// ordinary, non-UTF-8, control characters, long enough for two- and
// three-byte lengths.
func randomString(r *rand.Rand) string {
	pool := []string{
		"", "", "a", testUserID, testClientID, testScope, "rooms:read", "Invalid token.",
		"bad\xffutf8", "\xc3", "line\r\nbreak", "tab\tok", "nul\x00", "é ü 日本", "\u2028", `quote" back\`,
		"<script>&", strings.Repeat("x", 127), strings.Repeat("y", 128), strings.Repeat("z", 20000),
		"0123456789abcdef0123456789abcdef",
	}
	s := pool[r.IntN(len(pool))]
	if r.IntN(4) == 0 {
		s += pool[r.IntN(len(pool))]
	}
	return s
}

func randomDecision(r *rand.Rand) authz.Decision {
	results := []authz.Result{authz.Allow, authz.Allow, authz.Deny, authz.Unavailable, authz.Result(7)}
	reasons := []authz.Reason{authz.ReasonAllowed, authz.ReasonPublic, authz.ReasonInvalidToken,
		authz.ReasonInternalError, ReasonDeadlineExceeded, authz.ReasonMissingScope, "", authz.Reason(randomString(r))}
	statuses := []int{0, 200, 302, 400, 401, 403, 404, 405, 429, 500, 503, 599, 600, -1, 1 << 31, -(1 << 40)}
	challenges := []authz.Challenge{authz.ChallengeNone, authz.ChallengeInvalidRequest, authz.ChallengeInvalidToken,
		authz.ChallengeInsufficientScope, authz.Challenge(randomString(r))}
	return authz.Decision{
		Result:            results[r.IntN(len(results))],
		Reason:            reasons[r.IntN(len(reasons))],
		Status:            statuses[r.IntN(len(statuses))],
		Message:           randomString(r),
		Challenge:         challenges[r.IntN(len(challenges))],
		Scope:             randomString(r),
		Identity:          authz.Identity{UserID: randomString(r), ClientID: randomString(r), Scope: randomString(r)},
		RetryAfterSeconds: r.IntN(5) - 1,
		Allow:             randomString(r),
		DecisionID:        randomString(r),
	}
}

// TestEncodeDifferential compares the encoder with the builders for the
// adapter's own decisions and for random ones, in every configuration.
func TestEncodeDifferential(t *testing.T) {
	fixed := []authz.Decision{
		allowAll(context.Background(), nil),
		{Result: authz.Allow, Reason: authz.ReasonPublic, Status: http.StatusOK},
		{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: http.StatusOK, DecisionID: "0123456789abcdef",
			Identity: authz.Identity{UserID: testUserID, ClientID: testClientID}},
		{Result: authz.Allow, Identity: authz.Identity{UserID: "bad\r\nvalue"}},
		{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: 401, Message: "Invalid token.",
			Challenge: authz.ChallengeInvalidToken, DecisionID: "0123456789abcdef"},
		{Result: authz.Deny, Reason: authz.ReasonMethodNotAllowed, Status: 405, Message: "Method not allowed.", Allow: "GET, HEAD"},
		{Result: authz.Deny, Reason: authz.ReasonMissingScope, Status: 403, Message: "Missing scope.",
			Challenge: authz.ChallengeInsufficientScope, Scope: "rooms:write"},
		noHTTPDecision, internalDecision, lateDecision, badIdentityDecision, {},
	}
	r := rand.New(rand.NewPCG(16, 4))
	for name, s := range encodeServers() {
		t.Run(name, func(t *testing.T) {
			for _, d := range fixed {
				compareEncoded(t, s, d)
			}
			for range 3000 {
				compareEncoded(t, s, randomDecision(r))
			}
		})
	}
}

// FuzzEncodeDifferential is TestEncodeDifferential with the fuzzer choosing
// every field of the decision and the configuration.
func FuzzEncodeDifferential(f *testing.F) {
	f.Add(uint8(0), "allowed", 200, "", "", "", testUserID, testClientID, testScope, "0123456789abcdef", "", 0, uint8(0))
	f.Add(uint8(1), "invalid_token", 401, "Invalid token.", "invalid_token", "", "", "", "", "id", "", 0, uint8(1))
	f.Add(uint8(2), "directory_unavailable", 503, "Service temporarily unavailable.", "", "", testUserID, "", "", "", "", 1, uint8(2))
	f.Add(uint8(1), "not_allowed", 405, "Method not allowed.", "", "", "", "", "", "", "GET, HEAD", 0, uint8(3))
	f.Add(uint8(0), "allowed", 200, "", "", "", "a\xffb", "\r\n", "", "\xc3", "", 0, uint8(0))
	f.Add(uint8(1), "r\xff", 403, "m\xfe", "insufficient_scope", "s\x00", "u", "c", "x", "d", "A", -1, uint8(1))
	servers := encodeServers()
	names := []string{"default", "realm", "same-names", "no-metadata"}
	f.Fuzz(func(t *testing.T, result uint8, reason string, status int, message, challenge, scope,
		userID, clientID, idScope, decisionID, allow string, retryAfter int, config uint8) {
		d := authz.Decision{
			Result: authz.Result(result % 4), Reason: authz.Reason(reason), Status: status, Message: message,
			Challenge: authz.Challenge(challenge), Scope: scope,
			Identity:          authz.Identity{UserID: userID, ClientID: clientID, Scope: idScope},
			RetryAfterSeconds: retryAfter, Allow: allow, DecisionID: decisionID,
		}
		compareEncoded(t, servers[names[int(config)%len(names)]], d)
	})
}

// TestNewGRPCServerEncodes: a server made by NewGRPCServer answers with the
// hand-encoded CheckResponse (interceptors see a *checkwire.Encoded), and
// the client reads the same answer as from Check.
func TestNewGRPCServerEncodes(t *testing.T) {
	srv := New(allowAll, Options{})
	var seen any
	addr := serveGRPC(t, srv.NewGRPCServer(grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			seen = resp
			return resp, err
		})))
	req := loadFixture(t, "istio_sidecar_http1_post.json")
	got, err := grpcClient(t, addr).Check(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := seen.(*checkwire.Encoded); !ok {
		t.Fatalf("the handler answered a %T, want a *checkwire.Encoded", seen)
	}
	want, err := srv.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("over NewGRPCServer %v\nin process %v", got, want)
	}
}

// TestOmitDynamicMetadata: with the option, no transport's answer carries
// dynamic metadata, allows and denies alike, and nothing else changes.
func TestOmitDynamicMetadata(t *testing.T) {
	deny := authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: 401,
		Message: "Invalid token.", Challenge: authz.ChallengeInvalidToken, DecisionID: "0123456789abcdef"}
	for name, d := range map[string]Decider{"allow": allowAll, "deny": decide(deny)} {
		with, without := New(d, Options{}), New(d, Options{OmitDynamicMetadata: true})
		withCheckers, withoutCheckers := checkers(t, with), checkers(t, without)
		for i, c := range withoutCheckers {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				req := loadFixture(t, "istio_sidecar_http1_post.json")
				got, err := c.check(testCtx(t), req)
				if err != nil {
					t.Fatal(err)
				}
				if got.DynamicMetadata != nil {
					t.Fatalf("dynamic metadata sent: %v", got.DynamicMetadata)
				}
				want, err := withCheckers[i].check(testCtx(t), req)
				if err != nil {
					t.Fatal(err)
				}
				if want.DynamicMetadata == nil {
					t.Fatal("no dynamic metadata by default")
				}
				want.DynamicMetadata = nil
				if !proto.Equal(got, want) {
					t.Fatalf("without metadata %v\nwith it, less it %v", got, want)
				}
			})
		}
	}
}
