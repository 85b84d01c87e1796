package checkwire_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-authz/gatehouse/authz/extauthz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
)

// fixturesDir holds the CheckRequest shapes extauthz tests with.
const fixturesDir = "../testdata/checkrequests"

// reference decodes b the standard way: proto.Unmarshal, then extauthz's
// conversion.
func reference(b []byte) (checkwire.Check, error) {
	req := new(authv3.CheckRequest)
	if err := proto.Unmarshal(b, req); err != nil {
		return checkwire.Check{}, err
	}
	return extauthz.CheckFromRequest(req), nil
}

// decode is the decoder under test.
func decode(b []byte) (checkwire.Check, error) {
	var c checkwire.Check
	err := c.Unmarshal(b)
	return c, err
}

// compare fails t unless the decoder and the reference agree on b: both
// refuse it, or both accept it with the same values. It returns the
// decoder's result.
func compare(t testing.TB, b []byte) (checkwire.Check, error) {
	t.Helper()
	want, wantErr := reference(b)
	got, err := decode(b)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("decoder error %v, proto.Unmarshal error %v, input %x", err, wantErr, b)
	case err != nil:
		if !reflect.DeepEqual(got, checkwire.Check{}) {
			t.Fatalf("decoder refused the input but left %+v", got)
		}
	case !reflect.DeepEqual(got, want):
		t.Fatalf("decoder %+v\nreference %+v\ninput %x", got, want, b)
	}
	return got, err
}

// fixtures returns the wire form of every JSON fixture, by file name.
func fixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(fixturesDir, "*.json"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no fixtures in %s (err %v)", fixturesDir, err)
	}
	out := map[string][]byte{}
	for _, name := range names {
		out[filepath.Base(name)] = marshal(tb, loadFixture(tb, filepath.Base(name)))
	}
	return out
}

func loadFixture(tb testing.TB, name string) *authv3.CheckRequest {
	tb.Helper()
	js, err := os.ReadFile(filepath.Join(fixturesDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	req := new(authv3.CheckRequest)
	if err := protojson.Unmarshal(js, req); err != nil {
		tb.Fatalf("fixture %s: %v", name, err)
	}
	return req
}

func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Wire builders for hand-made inputs.

// cat concatenates encoded fields.
func cat(fields ...[]byte) []byte { return slices.Concat(fields...) }

// lenField encodes field num as length-delimited with contents v.
func lenField(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func strField(num protowire.Number, s string) []byte { return lenField(num, []byte(s)) }

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// group encodes field num as a group holding fields.
func group(num protowire.Number, fields ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.StartGroupType)
	b = append(b, cat(fields...)...)
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

// entry encodes a map<string, string> entry.
func entry(num protowire.Number, k, v string) []byte {
	return lenField(num, cat(strField(1, k), strField(2, v)))
}

// Paths to the fields the decoder keeps: each wraps fields of the named
// message into a whole CheckRequest.
func inAttributes(fields ...[]byte) []byte { return lenField(1, cat(fields...)) }
func inRequest(fields ...[]byte) []byte    { return inAttributes(lenField(4, cat(fields...))) }
func inHTTP(fields ...[]byte) []byte       { return inRequest(lenField(2, cat(fields...))) }

// headerValue encodes a header_map entry (HeaderMap.headers element).
func headerValue(fields ...[]byte) []byte { return lenField(1, cat(fields...)) }

func headerMap(values ...[]byte) []byte { return lenField(13, cat(values...)) }
