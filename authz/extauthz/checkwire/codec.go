package checkwire

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Codec is a gRPC server codec (encoding.CodecV2) that decodes into a
// *Check with Check.Unmarshal, so that a handler asking for a *Check gets
// only what gatehouse uses, sends an *Encoded as it is, and hands every
// other message to gRPC's standard proto codec. It is installed per server
// (grpc.ForceServerCodecV2), never registered globally: gRPC clients of
// the same process keep the standard codec.
type Codec struct {
	std encoding.CodecV2
}

// NewCodec returns a Codec.
func NewCodec() *Codec {
	return &Codec{std: encoding.GetCodecV2(grpcproto.Name)}
}

// Name is the standard codec's, "proto": the content-subtype proxies send.
func (c *Codec) Name() string { return grpcproto.Name }

// Encoded is a message already in wire form, which Codec.Marshal sends as
// it is: the CheckResponses extauthz encodes by hand, so that answering a
// check runs no reflection-based marshalling. Bytes must not change once
// handed to gRPC.
type Encoded struct {
	// Bytes is the message in wire form.
	Bytes []byte
	// buf and slice are what Marshal returns, made once in NewEncoded so
	// that Marshal allocates nothing: a *mem.SliceBuffer is a mem.Buffer
	// (its methods have value receivers) that points into e.
	buf   mem.SliceBuffer
	slice [1]mem.Buffer
}

// NewEncoded returns an Encoded of b, which must not change afterwards.
func NewEncoded(b []byte) *Encoded {
	e := &Encoded{Bytes: b, buf: b}
	e.slice[0] = &e.buf
	return e
}

// Marshal returns the bytes of an *Encoded as they are, and hands any other
// message to the standard codec. The bytes are not pooled: gRPC's own
// codec does not pool messages under a kilobyte either, and answers are
// smaller.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*Encoded); ok {
		if e.slice[0] == nil { // not made by NewEncoded
			return mem.BufferSlice{mem.SliceBuffer(e.Bytes)}, nil
		}
		return e.slice[:], nil
	}
	return c.std.Marshal(v)
}

// Unmarshal decodes data into v: with Check.Unmarshal when v is a *Check,
// else with the standard codec. gRPC frees data once it returns, which a
// Check does not mind: its strings are copies.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error {
	check, ok := v.(*Check)
	if !ok {
		return c.std.Unmarshal(data, v)
	}
	if len(data) == 1 {
		return check.Unmarshal(data[0].ReadOnlyData())
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return check.Unmarshal(buf.ReadOnlyData())
}
