// Package checkwire reads a serialized envoy.service.auth.v3.CheckRequest
// straight from its wire form, keeping only what gatehouse uses: the
// authz.Request the decision core judges and the request id of the decision
// log line. It allocates those strings (in one block) and the context
// extensions map, nothing else: no header map, no message structs, none of
// the peer addresses, certificates and metadata an Istio sidecar sends.
//
// The reference is proto.Unmarshal followed by extauthz.RequestFromCheck:
// for any input, Check.Unmarshal refuses exactly what proto.Unmarshal
// refuses, and otherwise yields the same values (the differential fuzz
// target FuzzDifferential holds it to that). So it parses every field it does
// not keep as proto.Unmarshal would, checking UTF-8 in every proto3 string,
// nesting depth and wire well-formedness, from a schema built from the
// generated descriptors; it merges repeated occurrences of an embedded
// message, lets the last occurrence of a singular field and of a map key
// win, and skips unknown fields (groups included) and known fields sent
// with another wire type.
package checkwire

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Check is what gatehouse reads from a CheckRequest.
type Check struct {
	// Request is what extauthz.RequestFromCheck returns for the request,
	// ContextExtensions included (nil when there are none).
	Request authz.Request
	// HTTP reports whether the request has attributes.request.http, the
	// second result of RequestFromCheck. Without it Request is zero.
	HTTP bool
	// RequestID correlates the decision with proxy logs: the x-request-id
	// header when not empty, else attributes.request.http.id.
	RequestID string
}

// Unmarshal decodes the serialized CheckRequest b into c, replacing what c
// held. On error c is zero. The strings of c do not alias b.
func (c *Check) Unmarshal(b []byte) error {
	*c = Check{}
	var d decoder
	if err := d.checkRequest(b, recursionLimit); err != nil {
		return fmt.Errorf("decode CheckRequest: %w", err)
	}
	d.finish(c)
	return nil
}

// Header names gatehouse reads (extauthz/request.go), as slot indexes.
const (
	slotMethod = iota
	slotPath
	slotAuthority
	slotAuthorization
	slotRequestID
	slotTraceParent
	slotTraceState
	numSlots
)

// slotOf returns the slot of the header named key, or -1. The headers map
// is matched exactly (Envoy lower-cases it); header_map names with fold,
// ASCII case-insensitively like extauthz's rawHeader.
func slotOf(key []byte, fold bool) int {
	var name string
	var slot int
	switch len(key) {
	case len(":path"):
		name, slot = ":path", slotPath
	case len(":method"):
		name, slot = ":method", slotMethod
	case len(":authority"): // == len("tracestate")
		name, slot = ":authority", slotAuthority
		if key[0] != ':' {
			name, slot = "tracestate", slotTraceState
		}
	case len("traceparent"):
		name, slot = "traceparent", slotTraceParent
	case len("x-request-id"):
		name, slot = "x-request-id", slotRequestID
	case len("authorization"):
		name, slot = "authorization", slotAuthorization
	default:
		return -1
	}
	if fold {
		if !equalFoldASCII(key, name) {
			return -1
		}
	} else if string(key) != name {
		return -1
	}
	return slot
}

// equalFoldASCII is authz.EqualFoldASCII for a byte slice: lower must be
// lower case; only A-Z fold.
func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// slot collects one header: its value in the headers map (the last entry
// for the name) and its values in header_map, in order.
type slot struct {
	inMap  bool
	mapVal []byte
	raw    int      // header_map occurrences
	first  []byte   // the first one's value
	more   [][]byte // the others' (a duplicated header is rare)
}

// found reports whether the header is present: extauthz's header() ok.
func (s *slot) found() bool { return s.inMap || s.raw > 0 }

// size is the length of the header's value, the header_map values being
// joined with "," as Envoy joins them in the headers map.
func (s *slot) size() int {
	if s.inMap {
		return len(s.mapVal)
	}
	n := len(s.first)
	for _, v := range s.more {
		n += 1 + len(v)
	}
	return n
}

func (s *slot) writeTo(sb *strings.Builder) {
	if s.inMap {
		sb.Write(s.mapVal)
		return
	}
	sb.Write(s.first)
	for _, v := range s.more {
		sb.WriteByte(',')
		sb.Write(v)
	}
}

// decoder holds what has been read so far: sub-slices of the input, which
// finish copies out.
type decoder struct {
	http                   bool
	id, method, path, host []byte
	slots                  [numSlots]slot
	ext                    map[string]string
}

// Field numbers (envoy/service/auth/v3/attribute_context.proto,
// envoy/config/core/v3/base.proto).
const (
	fieldCheckAttributes  = 1  // CheckRequest.attributes
	fieldAttrRequest      = 4  // AttributeContext.request
	fieldAttrContextExt   = 10 // AttributeContext.context_extensions
	fieldRequestHTTP      = 2  // AttributeContext.Request.http
	fieldHTTPID           = 1  // HttpRequest.id
	fieldHTTPMethod       = 2  // HttpRequest.method
	fieldHTTPHeaders      = 3  // HttpRequest.headers
	fieldHTTPPath         = 4  // HttpRequest.path
	fieldHTTPHost         = 5  // HttpRequest.host
	fieldHTTPHeaderMap    = 13 // HttpRequest.header_map
	fieldHeaderMapHeaders = 1  // HeaderMap.headers
	fieldHeaderValueKey   = 1  // HeaderValue.key
	fieldHeaderValueValue = 2  // HeaderValue.value
	fieldHeaderValueRaw   = 3  // HeaderValue.raw_value
	fieldMapKey           = 1  // key of a map entry
	fieldMapValue         = 2  // value of a map entry
)

// consumeBytes reads the length-delimited value at the start of b and
// returns it and what follows it.
func consumeBytes(b []byte) (v, rest []byte, err error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, nil, errMalformed
	}
	return v, b[n:], nil
}

// The decoders below follow the path to the kept fields. Each enters one
// nesting level like proto.Unmarshal, reads the length-delimited fields it
// keeps and hands every other field (other numbers, other wire types) to
// the schema (message.skip), which validates it and returns its length.
//
// checkRequest, request and headerMap have the same shape and are written
// out on purpose: one helper taking the next decoder as a function value
// makes the decoder escape to the heap (measured: 1 -> 2 allocations and
// 128 -> 896 bytes per front-Envoy request).

func (d *decoder) checkRequest(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType && num == fieldCheckAttributes {
			v, rest, err := consumeBytes(b)
			if err != nil {
				return err
			}
			if err := d.attributeContext(v, depth); err != nil {
				return err
			}
			b = rest
			continue
		}
		n, err := wire.checkRequest.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) attributeContext(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldAttrRequest || num == fieldAttrContextExt) {
			v, rest, err := consumeBytes(b)
			if err != nil {
				return err
			}
			if num == fieldAttrRequest {
				err = d.request(v, depth)
			} else {
				err = d.contextExtension(v, depth)
			}
			if err != nil {
				return err
			}
			b = rest
			continue
		}
		n, err := wire.attributeContext.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) contextExtension(b []byte, depth int) error {
	k, v, err := stringEntry(b, depth)
	if err != nil {
		return err
	}
	if d.ext == nil {
		d.ext = make(map[string]string, 1)
	}
	d.ext[string(k)] = string(v)
	return nil
}

func (d *decoder) request(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType && num == fieldRequestHTTP {
			v, rest, err := consumeBytes(b)
			if err != nil {
				return err
			}
			d.http = true
			if err := d.httpRequest(v, depth); err != nil {
				return err
			}
			b = rest
			continue
		}
		n, err := wire.request.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (d *decoder) httpRequest(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType {
			switch num {
			case fieldHTTPID, fieldHTTPMethod, fieldHTTPPath, fieldHTTPHost, fieldHTTPHeaders, fieldHTTPHeaderMap:
				v, rest, err := consumeBytes(b)
				if err != nil {
					return err
				}
				if err := d.httpField(num, v, depth); err != nil {
					return err
				}
				b = rest
				continue
			}
		}
		n, err := wire.httpRequest.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// httpField keeps the value v of HttpRequest field num, read in an
// HttpRequest whose nesting left is depth.
func (d *decoder) httpField(num protowire.Number, v []byte, depth int) error {
	switch num {
	case fieldHTTPHeaders:
		k, val, err := stringEntry(v, depth)
		if err != nil {
			return err
		}
		if i := slotOf(k, false); i >= 0 {
			d.slots[i].inMap, d.slots[i].mapVal = true, val
		}
		return nil
	case fieldHTTPHeaderMap:
		return d.headerMap(v, depth)
	}
	if !utf8.Valid(v) {
		return errUTF8
	}
	switch num {
	case fieldHTTPID:
		d.id = v
	case fieldHTTPMethod:
		d.method = v
	case fieldHTTPPath:
		d.path = v
	case fieldHTTPHost:
		d.host = v
	}
	return nil
}

func (d *decoder) headerMap(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType && num == fieldHeaderMapHeaders {
			v, rest, err := consumeBytes(b)
			if err != nil {
				return err
			}
			if err := d.headerValue(v, depth); err != nil {
				return err
			}
			b = rest
			continue
		}
		n, err := wire.headerMap.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// headerValue reads one header_map entry. Its value is raw_value unless
// that is empty (proto3 bytes: an empty raw_value is no raw_value), else
// value, as extauthz's headerValue picks it.
func (d *decoder) headerValue(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	var key, value, raw []byte
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType {
			switch num {
			case fieldHeaderValueKey, fieldHeaderValueValue, fieldHeaderValueRaw:
				v, rest, err := consumeBytes(b)
				if err != nil {
					return err
				}
				if num != fieldHeaderValueRaw && !utf8.Valid(v) {
					return errUTF8
				}
				switch num {
				case fieldHeaderValueKey:
					key = v
				case fieldHeaderValueValue:
					value = v
				default:
					raw = v
				}
				b = rest
				continue
			}
		}
		n, err := wire.headerValue.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	i := slotOf(key, true)
	if i < 0 {
		return nil
	}
	if len(raw) > 0 {
		value = raw
	}
	s := &d.slots[i]
	if s.raw == 0 {
		s.first = value
	} else {
		s.more = append(s.more, value)
	}
	s.raw++
	return nil
}

// stringEntry reads a map<string, string> entry (headers,
// context_extensions) found in a message whose nesting left is depth:
// proto.Unmarshal counts the entry as one more level, and defaults a
// missing key or value to "".
func stringEntry(b []byte, depth int) (key, value []byte, err error) {
	if depth--; depth < 0 {
		return nil, nil, errDepth
	}
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, nil, errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldMapKey || num == fieldMapValue) {
			v, rest, err := consumeBytes(b)
			if err != nil {
				return nil, nil, err
			}
			if !utf8.Valid(v) {
				return nil, nil, errUTF8
			}
			if num == fieldMapKey {
				key = v
			} else {
				value = v
			}
			b = rest
			continue
		}
		n, err := wire.stringEntry.skip(num, typ, b, depth)
		if err != nil {
			return nil, nil, err
		}
		b = b[n:]
	}
	return key, value, nil
}

// value is where one string of the result comes from: bytes of the input,
// or a header slot.
type value struct {
	lit  []byte
	slot *slot
}

func (v value) size() int {
	if v.slot != nil {
		return v.slot.size()
	}
	return len(v.lit)
}

// finish resolves what extauthz.RequestFromCheck and requestID resolve,
// with the same fallbacks, and copies the strings out of the input in one
// allocation.
func (d *decoder) finish(c *Check) {
	if !d.http {
		return
	}
	// header returns the header's value: the headers map's, else
	// header_map's; none when absent.
	header := func(i int) value {
		if s := &d.slots[i]; s.found() {
			return value{slot: s}
		}
		return value{}
	}
	orHeader := func(lit []byte, i int) value {
		if len(lit) > 0 {
			return value{lit: lit}
		}
		return header(i)
	}
	const (
		outMethod = iota
		outPath
		outHost
		outAuthorization
		outTraceParent
		outTraceState
		outRequestID
		numOut
	)
	var vals [numOut]value
	vals[outMethod] = orHeader(d.method, slotMethod)
	vals[outPath] = orHeader(d.path, slotPath)
	vals[outHost] = orHeader(d.host, slotAuthority)
	vals[outAuthorization] = header(slotAuthorization)
	vals[outTraceParent] = header(slotTraceParent)
	if vals[outTraceParent].size() > 0 {
		vals[outTraceState] = header(slotTraceState)
	}
	vals[outRequestID] = header(slotRequestID)
	if vals[outRequestID].size() == 0 {
		vals[outRequestID] = value{lit: d.id}
	}

	total := 0
	for _, v := range vals {
		total += v.size()
	}
	var sb strings.Builder
	sb.Grow(total)
	var ends [numOut]int
	for i, v := range vals {
		if v.slot != nil {
			v.slot.writeTo(&sb)
		} else {
			sb.Write(v.lit)
		}
		ends[i] = sb.Len()
	}
	all := sb.String()
	str := func(i int) string {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		return all[start:ends[i]]
	}
	c.HTTP = true
	c.Request = authz.Request{
		Method:            str(outMethod),
		Path:              str(outPath),
		Host:              str(outHost),
		Authorization:     str(outAuthorization),
		ContextExtensions: d.ext,
		TraceParent:       str(outTraceParent),
		TraceState:        str(outTraceState),
	}
	c.RequestID = str(outRequestID)
}
