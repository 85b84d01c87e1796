package checkwire

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Codec is a gRPC server codec (encoding.CodecV2) that decodes into a
// *Check with Check.Unmarshal, so that a handler asking for a *Check gets
// only what gatehouse uses, and hands every other message, answers
// included, to gRPC's standard proto codec. It is installed per server
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

// Marshal is the standard codec's.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) { return c.std.Marshal(v) }

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
