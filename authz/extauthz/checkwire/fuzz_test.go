package checkwire_test

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// FuzzDifferential holds the decoder to its reference: for any input,
// Check.Unmarshal and proto.Unmarshal followed by extauthz's conversion
// both refuse it, or agree on every value (compare). Seeds: the fixtures
// in wire form, the same with header_map duplicates, and the hand-made
// inputs of TestCrafted (repeated fields and map keys, unknown fields and
// groups, wrong wire types, invalid UTF-8, truncations).
func FuzzDifferential(f *testing.F) {
	for name, b := range fixtures(f) {
		f.Add(b)
		req := loadFixture(f, name)
		http := req.GetAttributes().GetRequest().GetHttp()
		http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "Authorization", RawValue: []byte("Bearer a\xff")},
			{Key: "authorization", Value: "Bearer b"},
			{Key: ":path", RawValue: []byte("/raw")},
			{Key: "traceparent", Value: "00-1-2-01"},
		}}
		delete(http.Headers, "authorization")
		f.Add(marshal(f, req))
		// The same request twice: every message merged with itself.
		f.Add(append(append([]byte(nil), b...), b...))
	}
	for _, tc := range craftedCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compare(t, data)
	})
}
