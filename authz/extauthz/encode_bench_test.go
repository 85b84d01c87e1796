package extauthz

import (
	"net/http"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
)

// benchDecisions are the answers of make load's scenarios: the hot path's
// allow and an invalid token's deny, each with a decision id as the
// telemetry Decider sets it.
func benchDecisions() []struct {
	name string
	d    authz.Decision
} {
	return []struct {
		name string
		d    authz.Decision
	}{
		{"allow", authz.Decision{Result: authz.Allow, Reason: authz.ReasonAllowed, Status: http.StatusOK,
			Identity:   authz.Identity{UserID: testUserID, ClientID: "meet-bench-app", Scope: "rooms:list rooms:retrieve"},
			DecisionID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"deny", authz.Decision{Result: authz.Deny, Reason: authz.ReasonInvalidToken, Status: http.StatusUnauthorized,
			Message: "Invalid token.", Challenge: authz.ChallengeInvalidToken,
			DecisionID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
	}
}

// BenchmarkEncode measures what answering costs from a settled decision to
// the bytes gRPC writes, through checkwire's codec as a server made by
// NewGRPCServer runs it: the builders and proto.Marshal (the standard
// codec, as before the encoder), and the encoder, each with and without
// dynamic metadata. BenchmarkEncodeVT (build tag vtprotobuf) adds
// go-control-plane's vtprotobuf marshaller.
func BenchmarkEncode(b *testing.B) {
	codec := checkwire.NewCodec()
	for _, bd := range benchDecisions() {
		for _, meta := range []bool{true, false} {
			s := New(allowAll, Options{OmitDynamicMetadata: !meta})
			d := sendable(bd.d)
			suffix := ""
			if !meta {
				suffix = "/no-metadata"
			}
			b.Run(bd.name+"/builder+proto.Marshal"+suffix, func(b *testing.B) {
				benchMarshal(b, func() any { return s.response(&d) }, codec)
			})
			b.Run(bd.name+"/encoder"+suffix, func(b *testing.B) {
				benchMarshal(b, func() any { return s.enc.encode(&d) }, codec)
			})
		}
	}
}

func benchMarshal(b *testing.B, answer func() any, codec *checkwire.Codec) {
	b.ReportAllocs()
	var size int
	for b.Loop() {
		data, err := codec.Marshal(answer())
		if err != nil {
			b.Fatal(err)
		}
		size = data.Len()
		data.Free()
	}
	b.ReportMetric(float64(size), "bytes/answer")
}

// vtMarshaler is what go-control-plane's vtprotobuf files add to
// CheckResponse (build tag vtprotobuf).
type vtMarshaler interface{ MarshalVTStrict() ([]byte, error) }

// benchVT measures building the answer and marshalling it with
// MarshalVTStrict, wrapped for gRPC as a codec would.
func benchVT(b *testing.B, s *Server, d *authz.Decision) {
	b.ReportAllocs()
	var size int
	for b.Loop() {
		m, ok := any(s.response(d)).(vtMarshaler)
		if !ok {
			b.Skip("CheckResponse has no MarshalVTStrict: build with -tags vtprotobuf")
		}
		buf, err := m.MarshalVTStrict()
		if err != nil {
			b.Fatal(err)
		}
		data := mem.BufferSlice{mem.SliceBuffer(buf)}
		size = data.Len()
		data.Free()
	}
	b.ReportMetric(float64(size), "bytes/answer")
}

// BenchmarkEncodeVT is BenchmarkEncode's builder with vtprotobuf's
// marshaller instead of proto.Marshal. It skips unless the test binary is
// built with -tags vtprotobuf, which go-control-plane requires for it.
func BenchmarkEncodeVT(b *testing.B) {
	for _, bd := range benchDecisions() {
		for _, meta := range []bool{true, false} {
			s := New(allowAll, Options{OmitDynamicMetadata: !meta})
			d := sendable(bd.d)
			suffix := ""
			if !meta {
				suffix = "/no-metadata"
			}
			b.Run(bd.name+"/builder+MarshalVTStrict"+suffix, func(b *testing.B) { benchVT(b, s, &d) })
		}
	}
}
