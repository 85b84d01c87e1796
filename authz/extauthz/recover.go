package extauthz

import (
	"context"
	"log/slog"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse-authz/gatehouse/authz/internal/adapter"
)

// UnaryRecoverer returns an interceptor that turns a panic in a unary handler
// into an answer instead of a crashed process. For Authorization/Check the
// answer is a deny CheckResponse (status INTERNAL, HTTP 503 with
// Retry-After), never a gRPC error: Envoy would apply status_on_error to an
// error and, with failure_mode_allow, let the request through. Other methods
// get a codes.Internal error. The panic is logged at Error with the method,
// the panic's type (or a runtime error's message) and the stack, never the
// request or the panic value, which may embed request data
// (adapter.LogPanic). A nil logger discards.
func UnaryRecoverer(logger *slog.Logger) grpc.UnaryServerInterceptor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			adapter.LogPanic(ctx, logger, info.FullMethod, p)
			if info.FullMethod == authv3.Authorization_Check_FullMethodName {
				resp, err = internalCheckResponse(), nil
				return
			}
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}()
		return handler(ctx, req)
	}
}

// internalCheckResponse is the deny sent when Check itself failed. It has no
// challenge, so it needs no realm.
func internalCheckResponse() *authv3.CheckResponse {
	d := internalDecision
	return denyCheckResponse(&d, "")
}
