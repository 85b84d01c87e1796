package checkwire_test

import (
	"maps"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
)

func TestFixtures(t *testing.T) {
	for name, b := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			got, err := compare(t, b)
			if err != nil || !got.HTTP || got.Request.Method == "" || got.Request.Path == "" {
				t.Fatalf("fixture decoded to %+v, %v", got, err)
			}
		})
	}
}

// TestFixturesTruncated cuts every fixture at every length: a cut inside a
// field is refused by both, a cut between fields is a shorter request.
func TestFixturesTruncated(t *testing.T) {
	for name, b := range fixtures(t) {
		refused := 0
		for n := range len(b) {
			if _, err := compare(t, b[:n]); err != nil {
				refused++
			}
		}
		if refused == 0 {
			t.Errorf("%s: no truncation refused", name)
		}
	}
}

// TestCrafted holds the wire forms proto.Unmarshal accepts or refuses in
// ways a naive reader gets wrong. Each case states what the decoder must
// produce, and compare checks the reference agrees.
func TestCrafted(t *testing.T) {
	for _, tc := range craftedCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := compare(t, tc.in)
			if tc.refused {
				if err == nil {
					t.Fatalf("accepted, decoded %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.HTTP == tc.noHTTP {
				t.Fatalf("HTTP %v, want %v", got.HTTP, !tc.noHTTP)
			}
			if scalars(got.Request) != scalars(tc.want) {
				t.Errorf("request %+v, want %+v", got.Request, tc.want)
			}
			if !maps.Equal(got.Request.ContextExtensions, tc.want.ContextExtensions) {
				t.Errorf("context extensions %v, want %v", got.Request.ContextExtensions, tc.want.ContextExtensions)
			}
			if tc.requestID != "" && got.RequestID != tc.requestID {
				t.Errorf("request id %q, want %q", got.RequestID, tc.requestID)
			}
		})
	}
}

// scalars is r without its map, for ==.
func scalars(r authz.Request) [6]string {
	return [6]string{r.Method, r.Path, r.Host, r.Authorization, r.TraceParent, r.TraceState}
}

type craftedCase struct {
	name      string
	in        []byte
	refused   bool
	noHTTP    bool
	want      authz.Request
	requestID string
}

// craftedCases are also the fuzz target's hand-made seeds.
func craftedCases() []craftedCase {
	bad := "a\xffb" // not UTF-8
	// everyWireType is an unknown field of each wire type, a nested group
	// included; any message may carry them.
	everyWireType := cat(
		varintField(99, 1<<63),
		protowire.AppendFixed32(protowire.AppendTag(nil, 98, protowire.Fixed32Type), 7),
		protowire.AppendFixed64(protowire.AppendTag(nil, 97, protowire.Fixed64Type), 7),
		strField(96, bad),
		group(95, varintField(1, 1), group(2, strField(3, bad))),
	)
	auth := strField(1, "authorization")
	return []craftedCase{
		{name: "empty", in: nil, noHTTP: true},
		{name: "no http", in: inRequest(lenField(1, nil)), noHTTP: true},
		{name: "empty http", in: inHTTP(), want: authz.Request{}},
		{
			name: "fields in any order",
			in:   inHTTP(strField(5, "h"), entry(3, "authorization", "Bearer x"), strField(4, "/p"), strField(2, "GET")),
			want: authz.Request{Method: "GET", Path: "/p", Host: "h", Authorization: "Bearer x"},
		},
		{
			name: "duplicated singular fields: last wins",
			in:   inHTTP(strField(2, "GET"), strField(4, "/a"), strField(2, "POST"), strField(4, "/b"), strField(1, "id1"), strField(1, "id2")),
			want: authz.Request{Method: "POST", Path: "/b"}, requestID: "id2",
		},
		{
			name: "http merged across attributes occurrences",
			in:   cat(inHTTP(strField(2, "GET"), entry(3, "authorization", "Bearer a")), inHTTP(strField(4, "/p"))),
			want: authz.Request{Method: "GET", Path: "/p", Authorization: "Bearer a"},
		},
		{
			name: "http merged across request occurrences",
			in:   inAttributes(lenField(4, lenField(2, strField(2, "GET"))), lenField(4, lenField(2, strField(5, "h")))),
			want: authz.Request{Method: "GET", Host: "h"},
		},
		{
			name: "repeated map key: last wins",
			in:   inHTTP(entry(3, "authorization", "Bearer a"), entry(3, "x", "y"), entry(3, "authorization", "Bearer b")),
			want: authz.Request{Authorization: "Bearer b"},
		},
		{
			name: "map entry key and value repeated inside the entry",
			in:   inHTTP(lenField(3, cat(strField(1, "x"), strField(2, "v1"), strField(1, "authorization"), strField(2, "v2")))),
			want: authz.Request{Authorization: "v2"},
		},
		{
			name: "map entry without value is an empty value, which wins over header_map",
			in:   inHTTP(lenField(3, strField(1, "authorization")), headerMap(headerValue(auth, strField(2, "Bearer raw")))),
			want: authz.Request{Authorization: ""},
		},
		{
			name: "map keys are exact",
			in:   inHTTP(entry(3, "Authorization", "Bearer a")),
			want: authz.Request{},
		},
		{
			name: "map entry with unknown fields and a value sent as varint",
			in:   inHTTP(lenField(3, cat(everyWireType, strField(1, "authorization"), varintField(2, 5), strField(2, "v")))),
			want: authz.Request{Authorization: "v"},
		},
		{
			name: "pseudo-headers fill empty method, path and host",
			in:   inHTTP(strField(2, ""), entry(3, ":method", "PUT"), entry(3, ":path", "/x"), entry(3, ":authority", "a.example")),
			want: authz.Request{Method: "PUT", Path: "/x", Host: "a.example"},
		},
		{
			name: "header_map raw values, case-insensitive names, joined duplicates",
			in: inHTTP(headerMap(
				headerValue(strField(1, "AUTHORIZATION"), lenField(3, []byte("Bearer a"))),
				headerValue(strField(1, ":Method"), lenField(3, []byte("GET"))),
				headerValue(strField(1, "Authorization"), strField(2, "Bearer b")),
				headerValue(strField(1, "authoriſation"), strField(2, "unicode fold must not match")),
			)),
			want: authz.Request{Method: "GET", Authorization: "Bearer a,Bearer b"},
		},
		{
			name: "header_map merged across occurrences, kept in order",
			in: cat(inHTTP(headerMap(headerValue(auth, strField(2, "1")))),
				inHTTP(headerMap(headerValue(auth, strField(2, "2")))),
				inHTTP(headerMap(headerValue(auth, strField(2, "3"))))),
			want: authz.Request{Authorization: "1,2,3"},
		},
		{
			name: "raw_value is not UTF-8 checked, value is",
			in:   inHTTP(headerMap(headerValue(auth, lenField(3, []byte("Bearer "+bad))))),
			want: authz.Request{Authorization: "Bearer " + bad},
		},
		{
			name:    "header_map value not UTF-8",
			in:      inHTTP(headerMap(headerValue(auth, strField(2, bad)))),
			refused: true,
		},
		{
			name: "empty raw_value falls back to value, even after a non-empty one",
			in:   inHTTP(headerMap(headerValue(auth, lenField(3, []byte("raw")), strField(2, "value"), lenField(3, nil)))),
			want: authz.Request{Authorization: "value"},
		},
		{
			name: "header_map entry fields repeated, last wins",
			in:   inHTTP(headerMap(headerValue(strField(1, "authorization"), strField(2, "v1"), strField(1, "x"), strField(2, "v2"), strField(1, "Authorization")))),
			want: authz.Request{Authorization: "v2"},
		},
		{
			name: "traceparent and tracestate; tracestate alone is dropped",
			in:   inHTTP(entry(3, "traceparent", "00-a-b-01"), headerMap(headerValue(strField(1, "tracestate"), strField(2, "k=v")))),
			want: authz.Request{TraceParent: "00-a-b-01", TraceState: "k=v"},
		},
		{
			name: "tracestate without traceparent",
			in:   inHTTP(entry(3, "tracestate", "k=v"), entry(3, "traceparent", "")),
			want: authz.Request{},
		},
		{
			name:      "request id: empty x-request-id falls back to http.id",
			in:        inHTTP(entry(3, "x-request-id", ""), strField(1, "stream-7")),
			requestID: "stream-7",
		},
		{
			name:      "request id from header_map",
			in:        inHTTP(strField(1, "stream-7"), headerMap(headerValue(strField(1, "X-Request-Id"), strField(2, "rid")))),
			requestID: "rid",
		},
		{
			name: "context extensions: last wins, empty entry",
			in:   cat(inAttributes(entry(10, "k", "1"), lenField(10, nil)), inAttributes(entry(10, "k", "2")), inHTTP()),
			want: authz.Request{ContextExtensions: map[string]string{"k": "2", "": ""}},
		},
		{
			name:   "context extensions without http are dropped",
			in:     inAttributes(entry(10, "k", "1")),
			noHTTP: true,
		},
		{
			name: "unknown fields of every wire type everywhere",
			in: cat(everyWireType, inAttributes(everyWireType, lenField(4, cat(everyWireType,
				lenField(2, cat(everyWireType, strField(2, "GET"), headerMap(everyWireType, headerValue(everyWireType, auth, strField(2, "v")))))))),
			),
			want: authz.Request{Method: "GET", Authorization: "v"},
		},
		{
			name: "known fields with another wire type are unknown fields",
			in: inHTTP(strField(2, "GET"), varintField(2, 1), varintField(4, 1), group(5), varintField(3, 1), varintField(13, 1),
				protowire.AppendFixed32(protowire.AppendTag(nil, 9, protowire.Fixed32Type), 1)),
			want: authz.Request{Method: "GET"},
		},
		{
			name:   "attributes sent as a group are unknown",
			in:     group(1, varintField(1, 1)),
			noHTTP: true,
		},
		{name: "method not UTF-8", in: inHTTP(strField(2, bad)), refused: true},
		{name: "header key not UTF-8", in: inHTTP(entry(3, bad, "v")), refused: true},
		{name: "context extension value not UTF-8", in: inAttributes(entry(10, "k", bad)), refused: true},
		{name: "scheme not UTF-8 (not kept, still checked)", in: inHTTP(strField(6, bad)), refused: true},
		{name: "peer principal not UTF-8", in: inAttributes(lenField(1, strField(4, bad))), refused: true},
		{name: "tls sni not UTF-8", in: inAttributes(lenField(12, strField(1, bad))), refused: true},
		{name: "raw_body is bytes", in: inHTTP(lenField(12, []byte(bad)))},
		{
			name:    "metadata struct key not UTF-8",
			in:      inAttributes(lenField(11, lenField(1, cat(strField(1, "ns"), lenField(2, lenField(1, strField(1, bad))))))),
			refused: true,
		},
		{
			name:    "unknown field: string contents are not checked, truncation is",
			in:      cat(inHTTP(), lenField(50, []byte(bad)), []byte{0x92, 0x03, 0x05, 'a'}),
			refused: true,
		},
		{name: "end group at top level", in: protowire.AppendTag(nil, 7, protowire.EndGroupType), refused: true},
		{name: "end group in http", in: inHTTP(protowire.AppendTag(nil, 7, protowire.EndGroupType)), refused: true},
		{name: "unterminated group", in: protowire.AppendTag(nil, 7, protowire.StartGroupType), refused: true},
		{name: "group ended by another number", in: cat(protowire.AppendTag(nil, 7, protowire.StartGroupType), protowire.AppendTag(nil, 8, protowire.EndGroupType)), refused: true},
		{name: "field number 0", in: varintField(0, 1), refused: true},
		{name: "field number above the maximum", in: protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), refused: true},
		{name: "wire type 6", in: protowire.AppendVarint(nil, 1<<3|6), refused: true},
		{name: "varint overflow", in: []byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, refused: true},
		{name: "length past the end", in: []byte{0x0a, 0x05, 0x00}, refused: true},
		{name: "truncated tag", in: []byte{0x80}, refused: true},
	}
}

// TestNesting checks proto.Unmarshal's nesting limit, reached through
// google.protobuf.Struct in metadata_context, on both sides of the limit,
// including a map field met exactly where no level is left.
func TestNesting(t *testing.T) {
	// Struct{fields: {"a": Value{struct_value: inner}}} nests the map
	// entry, Value and Struct: 3 levels. Through a ListValue
	// (Value{list_value: {values: [Value{struct_value: inner}]}}) it is 5,
	// so that some chain puts the innermost Struct at every depth. inner
	// comes last in each level, so a chain is its levels' prefixes, outer
	// first, then the innermost Struct: built in linear time.
	prefix := func(num protowire.Number, n int) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.BytesType), uint64(n))
	}
	// wrap returns the prefix that makes a Struct of n bytes the innermost
	// of one more level.
	wrap := func(n int, list bool) []byte {
		pre := prefix(5, n) // Value.struct_value
		if list {
			pre = cat(prefix(1, len(pre)+n), pre) // ListValue.values
			pre = cat(prefix(6, len(pre)+n), pre) // Value.list_value
		}
		pre = cat(strField(1, "a"), prefix(2, len(pre)+n), pre) // FieldsEntry
		return cat(prefix(1, len(pre)+n), pre)                  // Struct.fields
	}
	metadata := func(st []byte) []byte {
		// CheckRequest > AttributeContext > Metadata > FilterMetadataEntry > Struct
		return inAttributes(lenField(11, lenField(1, cat(strField(1, "ns"), lenField(2, st)))))
	}
	accepted, refused := 0, 0
	// The innermost Struct empty, with its map field sent as a varint, with
	// an unknown field.
	for _, core := range [][]byte{nil, varintField(1, 1), strField(2, "x")} {
		for lists := range 3 {
			var prefixes [][]byte // innermost first
			n := len(core)
			add := func(list bool) {
				p := wrap(n, list)
				prefixes = append(prefixes, p)
				n += len(p)
			}
			for range lists {
				add(true)
			}
			for steps := 0; steps <= 3333; steps++ {
				if steps >= 3328 {
					st := make([]byte, 0, n)
					for i := len(prefixes) - 1; i >= 0; i-- {
						st = append(st, prefixes[i]...)
					}
					if _, err := compare(t, metadata(append(st, core...))); err != nil {
						refused++
					} else {
						accepted++
					}
				}
				add(false)
			}
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("accepted %d, refused %d: the limit was not crossed", accepted, refused)
	}
}

// TestMatchesRequestFromCheck: built requests (not hand-encoded) of the
// shapes extauthz's tests use.
func TestMatchesRequestFromCheck(t *testing.T) {
	meta, err := structpb.NewStruct(map[string]any{"a": map[string]any{"b": []any{1.5, "s", true, nil}}})
	if err != nil {
		t.Fatal(err)
	}
	req := loadFixture(t, "istio_sidecar_http1_post.json")
	req.Attributes.ContextExtensions = map[string]string{"route": "meet", "": "empty"}
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": meta}}
	req.Attributes.TlsSession = &authv3.AttributeContext_TLSSession{Sni: "orders.example.com"}
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "authorization", RawValue: []byte("ignored: the headers map has it")},
		{Key: "tracestate", Value: "k=v"},
	}}
	got, err := compare(t, marshal(t, req))
	if err != nil {
		t.Fatal(err)
	}
	if got.Request.TraceState != "k=v" || got.Request.ContextExtensions["route"] != "meet" {
		t.Fatalf("decoded %+v", got)
	}
}

// TestRequestFieldsCovered fails when authz.Request grows a field: the
// decoder fills each one by hand (decode.go, finish), and the differential
// tests only see a new field when a fixture happens to carry it.
func TestRequestFieldsCovered(t *testing.T) {
	if n := reflect.TypeFor[authz.Request]().NumField(); n != 7 {
		t.Fatalf("authz.Request has %d fields, checkwire fills 7: teach decode.go the new one, then update this count", n)
	}
}

// TestUnmarshalResets: a Check reused for another request keeps nothing of
// the previous one, and a refused input leaves it zero.
func TestUnmarshalResets(t *testing.T) {
	var c checkwire.Check
	if err := c.Unmarshal(cat(inAttributes(entry(10, "k", "v")), inHTTP(strField(2, "GET"), strField(1, "id"), entry(3, "authorization", "Bearer a")))); err != nil {
		t.Fatal(err)
	}
	if err := c.Unmarshal(inHTTP(strField(4, "/p"))); err != nil {
		t.Fatal(err)
	}
	if scalars(c.Request) != scalars(authz.Request{Path: "/p"}) || c.Request.ContextExtensions != nil || c.RequestID != "" {
		t.Fatalf("reused Check holds %+v", c.Request)
	}
	if err := c.Unmarshal(inHTTP(strField(2, "\xff"))); err == nil || !reflect.DeepEqual(c, checkwire.Check{}) {
		t.Fatalf("refused input: err %v, Check %+v", err, c)
	}
}

// TestStringsDoNotAliasInput: gRPC frees the receive buffer once the codec
// returns, so nothing decoded may point into it.
func TestStringsDoNotAliasInput(t *testing.T) {
	in := inHTTP(strField(2, "GET"), strField(4, "/p"), entry(3, "authorization", "Bearer a"))
	c, err := decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if c.Request.Method != "GET" || c.Request.Path != "/p" || c.Request.Authorization != "Bearer a" {
		t.Fatalf("decoded strings changed with the input: %+v", c.Request)
	}
}
