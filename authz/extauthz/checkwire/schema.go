package checkwire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Errors of a CheckRequest that proto.Unmarshal refuses too. They never
// quote the input: it carries credentials.
var (
	errMalformed = errors.New("malformed or truncated wire data")
	errUTF8      = errors.New("string field contains invalid UTF-8")
	errDepth     = errors.New("exceeded maximum recursion depth")
)

// recursionLimit is proto.Unmarshal's default nesting limit
// (proto.UnmarshalOptions.RecursionLimit).
const recursionLimit = protowire.DefaultRecursionLimit

// kind is how a known field is read: the wire type it must have to be
// parsed as that field (any other wire type makes it an unknown field,
// skipped) and what is checked in its value.
type kind uint8

const (
	kindNone    kind = iota // not in the schema: an unknown field
	kindVarint              // bool, enums, (s|u)int(32|64)
	kindFixed32             // fixed32, sfixed32, float
	kindFixed64             // fixed64, sfixed64, double
	kindBytes               // bytes, and strings proto does not check
	kindString              // strings that must be valid UTF-8
	kindMessage             // an embedded message
	kindMap                 // a map entry (msg is the entry)
)

type field struct {
	kind kind
	// list: a repeated scalar, which may also come packed (length-delimited).
	list bool
	msg  *message
}

// message is the schema of one message type, as proto.Unmarshal parses it.
type message struct {
	name   protoreflect.FullName
	dense  []field // by field number
	sparse map[protowire.Number]field
}

// maxDense bounds the field numbers kept in message.dense.
const maxDense = 64

func (m *message) field(num protowire.Number) field {
	if int(num) < len(m.dense) {
		return m.dense[num]
	}
	return m.sparse[num]
}

// schema holds the messages of a CheckRequest that the decoder reads itself;
// every other one is reached through their fields.
type schema struct {
	checkRequest, attributeContext, request, httpRequest, headerMap, headerValue *message
	stringEntry                                                                  *message
}

// wire is built once from the generated descriptors, so it follows the
// go-control-plane version in go.mod: a new field is validated as
// proto.Unmarshal validates it without a change here. It is never modified.
var wire = mustSchema()

func mustSchema() *schema {
	all := map[protoreflect.FullName]*message{}
	root, err := build(all, (&authv3.CheckRequest{}).ProtoReflect().Descriptor())
	if err != nil {
		// Only a generated proto using groups (proto2/editions delimited
		// encoding) gets here, which envoy's proto3 files cannot: the tests
		// fail at once if they ever do.
		panic(fmt.Errorf("checkwire: %w", err))
	}
	get := func(name protoreflect.FullName) *message {
		m := all[name]
		if m == nil {
			panic(fmt.Errorf("checkwire: %s is not part of CheckRequest", name))
		}
		return m
	}
	return &schema{
		checkRequest:     root,
		attributeContext: get("envoy.service.auth.v3.AttributeContext"),
		request:          get("envoy.service.auth.v3.AttributeContext.Request"),
		httpRequest:      get("envoy.service.auth.v3.AttributeContext.HttpRequest"),
		headerMap:        get("envoy.config.core.v3.HeaderMap"),
		headerValue:      get("envoy.config.core.v3.HeaderValue"),
		stringEntry:      get("envoy.service.auth.v3.AttributeContext.HttpRequest.HeadersEntry"),
	}
}

// build returns the schema of md, adding it and every message it reaches
// to all (recursive messages such as google.protobuf.Struct point back).
func build(all map[protoreflect.FullName]*message, md protoreflect.MessageDescriptor) (*message, error) {
	if m := all[md.FullName()]; m != nil {
		return m, nil
	}
	m := &message{name: md.FullName()}
	all[md.FullName()] = m
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := field{list: fd.IsList()}
		switch fd.Kind() {
		case protoreflect.BoolKind, protoreflect.EnumKind,
			protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
			protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
			f.kind = kindVarint
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			f.kind = kindFixed32
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			f.kind = kindFixed64
		case protoreflect.BytesKind:
			f.kind = kindBytes
		case protoreflect.StringKind:
			f.kind = kindBytes
			if enforceUTF8(fd) {
				f.kind = kindString
			}
		case protoreflect.MessageKind:
			f.kind, f.list = kindMessage, false
			if fd.IsMap() {
				f.kind = kindMap
			}
			sub, err := build(all, fd.Message())
			if err != nil {
				return nil, err
			}
			f.msg = sub
		default:
			return nil, fmt.Errorf("%s: field kind %v is not supported", fd.FullName(), fd.Kind())
		}
		num := fd.Number()
		if num < maxDense {
			for len(m.dense) <= int(num) {
				m.dense = append(m.dense, field{})
			}
			m.dense[num] = f
			continue
		}
		if m.sparse == nil {
			m.sparse = map[protowire.Number]field{}
		}
		m.sparse[num] = f
	}
	return m, nil
}

// enforceUTF8 is protobuf-go's rule for checking a string field's UTF-8:
// proto3 strings are checked, proto2 ones are not, editions say per field.
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	if fd.ParentFile().Syntax() == protoreflect.Editions {
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return fd.ParentFile().Syntax() == protoreflect.Proto3
}

// consumeTag reads a field's tag as proto.Unmarshal does: a varint whose
// field number is within [1, MaxValidNumber].
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, -1
	}
	if num := v >> 3; num < uint64(protowire.MinValidNumber) || num > uint64(protowire.MaxValidNumber) {
		return 0, 0, -1
	}
	return protowire.Number(v >> 3), protowire.Type(v & 7), n
}

// validate checks the message m encoded in b as proto.Unmarshal parses it,
// without keeping anything. depth is the nesting still allowed above it.
func (m *message) validate(b []byte, depth int) error {
	if depth--; depth < 0 {
		return errDepth
	}
	return m.validateFields(b, depth)
}

// validateFields is validate without entering a new nesting level, which
// is how proto.Unmarshal reads a map entry.
func (m *message) validateFields(b []byte, depth int) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		n, err := m.skip(num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// skip validates the value of field num (wire type typ) at the start of b,
// a field of m, and returns its length. depth is the nesting left in m.
//
// proto.Unmarshal keeps a known field whose wire type does not match as an
// unknown field: skip does the same. It refuses an end-group tag outside a
// group, and each map field nests once more before its wire type is even
// looked at (protobuf-go's consumeMap).
func (m *message) skip(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, error) {
	f := m.field(num)
	switch f.kind {
	case kindMap:
		if depth == 0 {
			return 0, errDepth
		}
		if typ != protowire.BytesType {
			break
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errMalformed
		}
		return n, f.msg.validateFields(v, depth-1)
	case kindMessage:
		if typ != protowire.BytesType {
			break
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errMalformed
		}
		return n, f.msg.validate(v, depth)
	case kindString, kindBytes:
		if typ != protowire.BytesType {
			break
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errMalformed
		}
		if f.kind == kindString && !utf8.Valid(v) {
			return 0, errUTF8
		}
		return n, nil
	case kindVarint, kindFixed32, kindFixed64:
		if f.list && typ == protowire.BytesType {
			return skipPacked(f.kind, b)
		}
		if typ != f.kind.wireType() {
			break
		}
	}
	// Unknown, or a known field with another wire type: skipped whole,
	// groups included, with protowire's own checks and nesting limit.
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, errMalformed
	}
	return n, nil
}

// skipPacked validates a packed repeated scalar: a length-delimited run of
// values of wire type k.wireType(), none of them truncated.
func skipPacked(k kind, b []byte) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, errMalformed
	}
	for len(v) > 0 {
		m := protowire.ConsumeFieldValue(1, k.wireType(), v)
		if m < 0 {
			return 0, errMalformed
		}
		v = v[m:]
	}
	return n, nil
}

func (k kind) wireType() protowire.Type {
	switch k {
	case kindVarint:
		return protowire.VarintType
	case kindFixed32:
		return protowire.Fixed32Type
	case kindFixed64:
		return protowire.Fixed64Type
	default:
		return protowire.BytesType
	}
}
