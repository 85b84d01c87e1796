package extauthz

import (
	"context"
	"slices"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/gatehouse-authz/gatehouse/authz/extauthz/checkwire"
)

// CheckFromRequest returns what Check reads from an already decoded req, in
// the form checkwire decodes it from the wire: RequestFromCheck's results
// and the request id of the decision log line. It is the reference
// checkwire.Check.Unmarshal is tested against.
func CheckFromRequest(req *authv3.CheckRequest) checkwire.Check {
	r, ok := RequestFromCheck(req)
	return checkwire.Check{
		Request:   r,
		HTTP:      ok,
		RequestID: requestID(req.GetAttributes().GetRequest().GetHttp()),
	}
}

// NewGRPCServer returns grpc.NewServer(opts...) serving s as its
// Authorization service, with each CheckRequest read by checkwire: only
// what Check uses is decoded, into one block of strings, instead of the
// whole request and its header map. Its answers go back encoded by hand
// (encode.go): the same bytes proto.Marshal would write for the
// CheckResponse that Check returns, without building that message. Every
// other message of the server (health checks, reflection, the answer of
// UnaryRecoverer) goes through gRPC's standard codec.
//
// The codec and the registration come together here because neither works
// without the other: the Check handler asks for a *checkwire.Check, which
// only checkwire's codec decodes, and a Check that fails to decode is an
// RPC error, which failure_mode_allow would let through.
func (s *Server) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	g := grpc.NewServer(append(slices.Clip(opts), grpc.ForceServerCodecV2(checkwire.NewCodec()))...)
	g.RegisterService(&wireServiceDesc, s)
	return g
}

// wireServiceDesc is authv3.Authorization_ServiceDesc with a Check handler
// that receives a *checkwire.Check.
var wireServiceDesc = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Check",
		Handler:    wireCheckHandler,
	}},
	Metadata: authv3.Authorization_ServiceDesc.Metadata,
}

// wireCheckHandler is the generated _Authorization_Check_Handler with a
// *checkwire.Check for request and a *checkwire.Encoded for response (the
// CheckResponse in wire form, which checkwire's codec sends as it is).
// Interceptors see those as the request and the response.
func wireCheckHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(checkwire.Check)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.checkEncoded(ctx, in), nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.checkEncoded(ctx, req.(*checkwire.Check)), nil
	})
}
