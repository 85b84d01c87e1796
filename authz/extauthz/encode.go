package extauthz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
	"github.com/gatehouse-authz/gatehouse/authz/internal/adapter"
)

// Field numbers of the messages a CheckResponse is made of, from
// envoy/service/auth/v3/external_auth.proto, envoy/config/core/v3/base.proto,
// envoy/type/v3/http_status.proto, google/rpc/status.proto and
// google/protobuf/struct.proto. TestEncodeFieldNumbers checks them against
// the generated descriptors.
const (
	fieldResponseStatus   protowire.Number = 1 // CheckResponse.status
	fieldResponseDenied   protowire.Number = 2 // CheckResponse.denied_response
	fieldResponseOK       protowire.Number = 3 // CheckResponse.ok_response
	fieldResponseMetadata protowire.Number = 4 // CheckResponse.dynamic_metadata

	fieldStatusCode protowire.Number = 1 // google.rpc.Status.code, envoy.type.v3.HttpStatus.code

	fieldDeniedStatus  protowire.Number = 1 // DeniedHttpResponse.status
	fieldDeniedHeaders protowire.Number = 2 // DeniedHttpResponse.headers
	fieldDeniedBody    protowire.Number = 3 // DeniedHttpResponse.body

	fieldOKHeaders         protowire.Number = 2 // OkHttpResponse.headers
	fieldOKHeadersToRemove protowire.Number = 5 // OkHttpResponse.headers_to_remove

	fieldOptionHeader       protowire.Number = 1 // HeaderValueOption.header
	fieldOptionAppendAction protowire.Number = 3 // HeaderValueOption.append_action
	fieldHeaderKey          protowire.Number = 1 // HeaderValue.key
	fieldHeaderValue        protowire.Number = 2 // HeaderValue.value

	fieldStructFields protowire.Number = 1 // Struct.fields (map entries)
	fieldEntryKey     protowire.Number = 1 // map entry key
	fieldEntryValue   protowire.Number = 2 // map entry value
	fieldValueString  protowire.Number = 3 // Value.string_value
)

// overwrite is the append_action of every header gatehouse sets (setHeader).
const overwrite = uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)

// encoder writes CheckResponses in wire form by hand, for the servers
// NewGRPCServer makes: the same messages allowCheckResponse and
// denyCheckResponse build (FuzzEncodeDifferential and TestEncodeDifferential
// hold it to them), without building them and without proto.Marshal's
// reflection. The shape of an answer is fixed, so each is one size pass and
// one write into a buffer of exactly that size.
//
// Every string it writes is valid UTF-8 by the same rules as the builders
// (identity values are authz.HeaderSafe, deny values come from
// normalizeDeny and adapter.DenyHeadersOf, metadata goes through
// validUTF8): a string field that is not would make Envoy refuse the whole
// answer, an error that failure_mode_allow lets through.
type encoder struct {
	realm    string
	headers  identityHeaders
	metadata bool
}

// outHeader is one header an answer sets, and the sizes of its encoded
// HeaderValue and HeaderValueOption (answer.size).
type outHeader struct {
	name, value        string
	valueSize, optSize int
}

// meta is one string of dynamic_metadata, and the sizes of its encoded
// Value and map entry (answer.size).
type meta struct {
	key, value           string
	valueSize, entrySize int
}

// answer is what an encoded CheckResponse holds besides its fixed parts.
type answer struct {
	grpcCode   int32
	allow      bool
	httpStatus uint64
	// The deny body is authz.Decision.Body: {"detail":"<detail>"} written
	// here when the message needs no JSON escaping (plainJSON), else body.
	detail   string
	body     []byte
	set      [5]outHeader
	nset     int
	remove   [3]string
	nremove  int
	meta     [5]meta
	nmeta    int
	metadata bool

	// Sizes of the nested messages, from answer.size.
	statusSize, httpSize, metadataSize int
}

// addMeta is metadata.add: empty values are skipped.
func (a *answer) addMeta(key, value string) {
	if value == "" || a.nmeta == len(a.meta) {
		return
	}
	a.meta[a.nmeta] = meta{key: key, value: validUTF8(value)}
	a.nmeta++
}

// encode returns the answer to d in wire form: an allow, or a deny when d is
// not one. d must come from settle (through sendable), as the builders'
// input does: an allow's identity is then known to be sendable, which is
// not checked again here.
func (e *encoder) encode(d *authz.Decision) *checkwire.Encoded {
	var a answer
	if d.Allowed() {
		e.allow(&a, d)
	} else {
		e.deny(&a, d)
	}
	return checkwire.NewEncoded(a.appendTo(make([]byte, 0, a.size())))
}

// allow fills a as allowCheckResponse builds its response.
func (e *encoder) allow(a *answer, d *authz.Decision) {
	id := &d.Identity
	a.allow = true
	for _, h := range [3]outHeader{
		{name: e.headers.user, value: id.UserID},
		{name: e.headers.client, value: id.ClientID},
		{name: e.headers.scope, value: id.Scope},
	} {
		if h.value == "" {
			a.remove[a.nremove] = h.name
			a.nremove++
			continue
		}
		a.set[a.nset] = h
		a.nset++
	}
	// A name both set and removed (two identity headers configured alike)
	// is only set.
	kept := 0
	for _, name := range a.remove[:a.nremove] {
		if !a.sets(name) {
			a.remove[kept] = name
			kept++
		}
	}
	a.nremove = kept

	if a.metadata = e.metadata; a.metadata {
		// Keys in sorted order, as a deterministic proto.Marshal writes
		// the map, so that the bytes can be compared whole in tests.
		a.addMeta(metaClientID, id.ClientID)
		a.addMeta(metaDecisionID, d.DecisionID)
		a.addMeta(metaReason, string(d.Reason))
		a.addMeta(metaResult, authz.Allow.String())
		a.addMeta(metaUserID, id.UserID)
	}
}

// sets reports whether a sets the header name.
func (a *answer) sets(name string) bool {
	for _, h := range a.set[:a.nset] {
		if h.name == name {
			return true
		}
	}
	return false
}

// deny fills a as denyCheckResponse builds its response.
func (e *encoder) deny(a *answer, d *authz.Decision) {
	a.grpcCode = int32(grpcCode(d))
	a.httpStatus = uint64(int32(d.Status)) // an enum: int32, sign-extended
	if plainJSON(d.Message) {
		a.detail = d.Message
	} else {
		a.body = d.Body()
	}
	a.set[0] = outHeader{name: headerContentType, value: adapter.ContentTypeJSON}
	a.nset = 1
	dh := adapter.DenyHeadersOf(d, e.realm)
	for _, h := range [...]outHeader{
		{name: headerWWWAuthenticate, value: dh.Challenge},
		{name: headerRetryAfter, value: dh.RetryAfter},
		{name: authz.DecisionIDHeader, value: dh.DecisionID},
		{name: headerAllow, value: dh.Allow},
	} {
		if h.value != "" {
			a.set[a.nset] = h
			a.nset++
		}
	}
	if a.metadata = e.metadata; a.metadata {
		a.addMeta(metaClientID, d.Identity.ClientID)
		a.addMeta(metaDecisionID, d.DecisionID)
		a.addMeta(metaReason, string(d.Reason))
		a.addMeta(metaResult, d.Result.String())
		a.addMeta(metaUserID, d.Identity.UserID)
	}
}

// bodyPrefix and bodySuffix surround the detail of a deny body
// (authz.Decision.Body) whose message needs no escaping.
const (
	bodyPrefix = `{"detail":"`
	bodySuffix = `"}`
)

// plainJSON reports whether s is printable ASCII that encoding/json writes
// as it is inside a string: no quote, backslash, control character, or
// <, > and & (which it escapes for HTML). Every message gatehouse writes
// is; anything else goes through authz.Decision.Body.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// Sizes. proto3 leaves out empty strings and zero numbers; a set message
// field is written even when empty.

func sizeString(n protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(s))
}

func sizeVarint(n protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeVarint(v)
}

func sizeMessage(n protowire.Number, size int) int {
	return protowire.SizeTag(n) + protowire.SizeBytes(size)
}

func sizeBytes(n protowire.Number, b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(b))
}

func (a *answer) httpField() protowire.Number {
	if a.allow {
		return fieldResponseOK
	}
	return fieldResponseDenied
}

// size returns the size of the encoded answer, and records the size of
// every nested message for appendTo.
func (a *answer) size() int {
	a.statusSize = sizeVarint(fieldStatusCode, uint64(a.grpcCode))
	field := fieldDeniedHeaders
	if a.allow {
		field = fieldOKHeaders
	}
	a.httpSize = 0
	for i := range a.set[:a.nset] {
		h := &a.set[i]
		h.valueSize = sizeString(fieldHeaderKey, h.name) + sizeString(fieldHeaderValue, h.value)
		h.optSize = sizeMessage(fieldOptionHeader, h.valueSize) + sizeVarint(fieldOptionAppendAction, overwrite)
		a.httpSize += sizeMessage(field, h.optSize)
	}
	if a.allow {
		for _, name := range a.remove[:a.nremove] {
			a.httpSize += sizeString(fieldOKHeadersToRemove, name)
		}
	} else {
		a.httpSize += sizeMessage(fieldDeniedStatus, sizeVarint(fieldStatusCode, a.httpStatus))
		if a.body == nil {
			a.httpSize += sizeMessage(fieldDeniedBody, len(bodyPrefix)+len(a.detail)+len(bodySuffix))
		} else {
			a.httpSize += sizeBytes(fieldDeniedBody, a.body)
		}
	}
	n := sizeMessage(fieldResponseStatus, a.statusSize) + sizeMessage(a.httpField(), a.httpSize)
	if a.metadata {
		a.metadataSize = 0
		for i := range a.meta[:a.nmeta] {
			m := &a.meta[i]
			m.valueSize = sizeString(fieldValueString, m.value)
			m.entrySize = sizeString(fieldEntryKey, m.key) + sizeMessage(fieldEntryValue, m.valueSize)
			a.metadataSize += sizeMessage(fieldStructFields, m.entrySize)
		}
		n += sizeMessage(fieldResponseMetadata, a.metadataSize)
	}
	return n
}

// Writes, in the order proto.Marshal writes (field-number order, the oneof
// last), so that the bytes are those of a deterministic proto.Marshal.

func appendString(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), v)
}

func appendBytes(b []byte, n protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendMessage(b []byte, n protowire.Number, size int) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.BytesType), uint64(size))
}

func (h *outHeader) appendOption(b []byte, n protowire.Number) []byte {
	b = appendMessage(b, n, h.optSize)
	b = appendMessage(b, fieldOptionHeader, h.valueSize)
	b = appendString(b, fieldHeaderKey, h.name)
	b = appendString(b, fieldHeaderValue, h.value)
	return appendVarint(b, fieldOptionAppendAction, overwrite)
}

func (a *answer) appendTo(b []byte) []byte {
	b = appendMessage(b, fieldResponseStatus, a.statusSize)
	b = appendVarint(b, fieldStatusCode, uint64(a.grpcCode))

	if a.metadata {
		b = appendMessage(b, fieldResponseMetadata, a.metadataSize)
		for i := range a.meta[:a.nmeta] {
			m := &a.meta[i]
			b = appendMessage(b, fieldStructFields, m.entrySize)
			b = appendString(b, fieldEntryKey, m.key)
			b = appendMessage(b, fieldEntryValue, m.valueSize)
			b = appendString(b, fieldValueString, m.value)
		}
	}

	b = appendMessage(b, a.httpField(), a.httpSize)
	if a.allow {
		for i := range a.set[:a.nset] {
			b = a.set[i].appendOption(b, fieldOKHeaders)
		}
		for _, name := range a.remove[:a.nremove] {
			b = appendString(b, fieldOKHeadersToRemove, name)
		}
	} else {
		b = appendMessage(b, fieldDeniedStatus, sizeVarint(fieldStatusCode, a.httpStatus))
		b = appendVarint(b, fieldStatusCode, a.httpStatus)
		for i := range a.set[:a.nset] {
			b = a.set[i].appendOption(b, fieldDeniedHeaders)
		}
		if a.body == nil {
			b = appendMessage(b, fieldDeniedBody, len(bodyPrefix)+len(a.detail)+len(bodySuffix))
			b = append(append(append(b, bodyPrefix...), a.detail...), bodySuffix...)
		} else {
			b = appendBytes(b, fieldDeniedBody, a.body)
		}
	}
	return b
}
