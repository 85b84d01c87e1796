package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// headerFlags collects repeated --header k=v values.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q is not name=value", v)
	}
	*h = append(*h, v)
	return nil
}

// checkArgs is what check sends.
type checkArgs struct {
	addr, token, method, path, host string
	headers                         headerFlags
	timeout                         time.Duration
}

// runCheck sends one CheckRequest, as Envoy's ext_authz filter would, and
// prints the decision. Exit code: 0 allow, 1 deny, 2 error. The token is never
// printed.
func runCheck(ctx context.Context, e env, args []string) int {
	var a checkArgs
	fs := flag.NewFlagSet("gatehouse check", flag.ContinueOnError)
	fs.StringVar(&a.addr, "addr", "127.0.0.1:9000", "gatehouse gRPC `address`")
	fs.StringVar(&a.token, "token", "", "bearer `token` sent as \"authorization: Bearer <token>\" (empty: no authorization header)")
	fs.StringVar(&a.method, "method", "GET", "HTTP `method` of the checked request")
	fs.StringVar(&a.path, "path", "/", "`path` (and query) of the checked request")
	fs.StringVar(&a.host, "host", "localhost", "`host` (:authority) of the checked request")
	fs.Var(&a.headers, "header", "extra request `header` as name=value (repeatable; overrides --token for authorization)")
	fs.DurationVar(&a.timeout, "timeout", 2*time.Second, "deadline of the Check call")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if a.timeout <= 0 {
		return fail(e, fmt.Errorf("check: --timeout must be positive, got %s", a.timeout))
	}
	resp, err := sendCheck(ctx, a)
	if err != nil {
		return fail(e, fmt.Errorf("check %s: %w", a.addr, err))
	}
	if err := printCheckResponse(e.stdout, resp); err != nil {
		return fail(e, fmt.Errorf("check: print: %w", err))
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		return exitOK
	}
	return exitFail
}

// checkRequest builds the CheckRequest Envoy's HTTP filter would send.
func checkRequest(a checkArgs) (*authv3.CheckRequest, error) {
	idBytes := make([]byte, 16)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, fmt.Errorf("request id: %w", err)
	}
	id := hex.EncodeToString(idBytes)
	headers := map[string]string{
		":method":      a.method,
		":path":        a.path,
		":authority":   a.host,
		":scheme":      "http",
		"x-request-id": id,
	}
	if a.token != "" {
		headers["authorization"] = "Bearer " + a.token
	}
	replaced := map[string]bool{}
	for _, kv := range a.headers {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		// Envoy joins repeated headers with a comma; a --header replaces
		// what --token and the defaults set.
		if old, ok := headers[k]; ok && replaced[k] {
			v = old + "," + v
		}
		headers[k] = v
		replaced[k] = true
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       id,
				Method:   a.method,
				Path:     a.path,
				Host:     a.host,
				Scheme:   "http",
				Protocol: "HTTP/1.1",
				Headers:  headers,
			},
		},
	}}, nil
}

func sendCheck(ctx context.Context, a checkArgs) (*authv3.CheckResponse, error) {
	req, err := checkRequest(a)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return nil, fmt.Errorf("%s: %s", st.Code(), st.Message())
		}
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("empty response")
	}
	return resp, nil
}

// printCheckResponse prints the decision for a person: the outcome, the HTTP
// status, the detail and the headers, then the dynamic metadata.
func printCheckResponse(w io.Writer, resp *authv3.CheckResponse) error {
	var b strings.Builder
	code := codes.Code(resp.GetStatus().GetCode())
	switch r := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		fmt.Fprintf(&b, "decision: allow (status %s)\n", code)
		writeHeaders(&b, "headers set on the upstream request", r.OkResponse.GetHeaders())
		if rm := r.OkResponse.GetHeadersToRemove(); len(rm) > 0 {
			fmt.Fprintf(&b, "headers removed from the upstream request: %s\n", strings.Join(rm, ", "))
		}
	case *authv3.CheckResponse_DeniedResponse:
		writeDenied(&b, "deny", code, r.DeniedResponse)
	case *authv3.CheckResponse_ErrorResponse:
		writeDenied(&b, "error", code, r.ErrorResponse)
	default:
		if code == codes.OK {
			fmt.Fprintf(&b, "decision: allow (status %s, no HTTP response)\n", code)
		} else {
			fmt.Fprintf(&b, "decision: deny (status %s, no HTTP response)\n", code)
		}
	}
	writeMetadata(&b, resp.GetDynamicMetadata())
	_, err := io.WriteString(w, b.String())
	return err
}

func writeDenied(b *strings.Builder, what string, code codes.Code, d *authv3.DeniedHttpResponse) {
	fmt.Fprintf(b, "decision: %s (status %s)\n", what, code)
	fmt.Fprintf(b, "http status: %d\n", d.GetStatus().GetCode())
	var body struct {
		Detail *string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err == nil && body.Detail != nil {
		fmt.Fprintf(b, "detail: %s\n", *body.Detail)
	} else if d.GetBody() != "" {
		fmt.Fprintf(b, "body: %s\n", d.GetBody())
	}
	writeHeaders(b, "response headers", d.GetHeaders())
}

func writeHeaders(b *strings.Builder, title string, hs []*corev3.HeaderValueOption) {
	if len(hs) == 0 {
		return
	}
	fmt.Fprintf(b, "%s:\n", title)
	for _, h := range hs {
		v := h.GetHeader().GetValue()
		if v == "" && len(h.GetHeader().GetRawValue()) > 0 {
			v = string(h.GetHeader().GetRawValue())
		}
		fmt.Fprintf(b, "  %s: %s", h.GetHeader().GetKey(), v)
		if h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			fmt.Fprintf(b, "  [%s]", h.GetAppendAction())
		}
		b.WriteByte('\n')
	}
}

func writeMetadata(b *strings.Builder, md *structpb.Struct) {
	fields := md.GetFields()
	if len(fields) == 0 {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("dynamic metadata:\n")
	for _, k := range keys {
		v, err := json.Marshal(fields[k].AsInterface())
		if err != nil {
			v = []byte("?")
		}
		fmt.Fprintf(b, "  %s: %s\n", k, v)
	}
}
