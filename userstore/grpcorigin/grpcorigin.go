// Package grpcorigin is a client of gatehouse's directory protocol
// (proto/gatehouse/directory/v1): the origin behind a grpc:// or grpcs://
// directory URL, for any service that implements DirectoryService.
//
// Answers, failing closed:
//   - NOT_FOUND, or INVALID_ARGUMENT (an id the server cannot parse):
//     NotFound — no such record; and an attacker's garbage ids must not
//     count as failures that open a circuit breaker for everyone;
//   - an answer: Active or Inactive from its active flag; an answer without
//     the record: Inactive with an error wrapping userstore.ErrInvalidRecord;
//   - an id the protocol cannot carry (not UTF-8, longer than MaxIDLength):
//     NotFound without a call;
//   - any other status (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, …): an
//     error wrapping userstore.ErrUnavailable.
package grpcorigin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"unicode/utf8"

	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	directoryv1 "github.com/gatehouse-authz/gatehouse/proto/gatehouse/directory/v1"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Defaults for Options.
const (
	DefaultTimeout = time.Second
	// MaxIDLength bounds the ids sent: longer ones are NotFound without a
	// call.
	MaxIDLength = 1024
	// maxResponseBytes bounds what one answer may make gatehouse read: an
	// answer is an id and a flag.
	maxResponseBytes = 64 << 10
)

// Options configure an Origin. Zero values select the defaults.
type Options struct {
	// URL is grpc://host:port (plaintext, for a sidecar or a trusted
	// network) or grpcs://host:port (TLS).
	URL string
	// CAFile, for grpcs, names a PEM file of the certificate authorities
	// to trust instead of the system's.
	CAFile string
	// Timeout bounds every lookup, on top of the caller's context (default
	// DefaultTimeout).
	Timeout time.Duration
	// Watch tunes Watch's reconnections.
	Watch WatchOptions
	// Logger receives the origin's logs (default slog.Default()).
	Logger *slog.Logger
}

// WatchOptions tune Watch. Zero values select the defaults.
type WatchOptions struct {
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from one failure to the next (defaults 100ms
	// and 10s), jittered by up to a quarter.
	MinBackoff, MaxBackoff time.Duration
}

// Origin is a userstore.Directory backed by a DirectoryService. It is safe
// for concurrent use.
type Origin struct {
	conn    *grpc.ClientConn
	client  directoryv1.DirectoryServiceClient
	target  string
	timeout time.Duration
	watch   WatchOptions
	log     *slog.Logger
}

var _ userstore.Directory = (*Origin)(nil)

// New parses the URL and returns an Origin. It does not connect: gRPC
// connects on the first call and reconnects by itself.
func New(opts Options) (*Origin, error) {
	target, useTLS, err := parseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	var creds credentials.TransportCredentials
	switch {
	case useTLS:
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("grpcorigin: read the CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("grpcorigin: the CA file %s holds no PEM certificate", opts.CAFile)
			}
			cfg.RootCAs = pool
		}
		creds = credentials.NewTLS(cfg)
	case opts.CAFile != "":
		return nil, errors.New("grpcorigin: a CA file is set but the URL is grpc:// (plaintext): use grpcs://")
	default:
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient("dns:///"+target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)),
		grpc.WithUserAgent("gatehouse"),
	)
	if err != nil {
		return nil, fmt.Errorf("grpcorigin: %s: %w", opts.URL, err)
	}
	w := opts.Watch
	if w.MinBackoff <= 0 {
		w.MinBackoff = 100 * time.Millisecond
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = 10 * time.Second
	}
	w.MaxBackoff = max(w.MaxBackoff, w.MinBackoff)
	o := &Origin{
		conn:    conn,
		client:  directoryv1.NewDirectoryServiceClient(conn),
		target:  target,
		timeout: opts.Timeout,
		watch:   w,
		log:     opts.Logger,
	}
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o, nil
}

// parseURL checks a grpc:// or grpcs:// URL and returns its host:port.
func parseURL(raw string) (target string, useTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("grpcorigin: directory URL does not parse: %w", err)
	}
	switch u.Scheme {
	case "grpc":
	case "grpcs":
		useTLS = true
	default:
		return "", false, fmt.Errorf("grpcorigin: directory URL scheme %q: want grpc or grpcs", u.Scheme)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, errors.New("grpcorigin: a directory URL is grpc[s]://host:port, without user, path or parameters")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return "", false, fmt.Errorf("grpcorigin: directory URL %s: want host:port", u.Redacted())
	}
	return u.Host, useTLS, nil
}

// Lookup implements userstore.Directory.
func (o *Origin) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	if kind != userstore.User && kind != userstore.App {
		return userstore.NotFound, fmt.Errorf("grpcorigin: unknown kind %d", kind)
	}
	if id == "" || len(id) > MaxIDLength || !utf8.ValidString(id) {
		// proto3 strings are UTF-8: the protocol cannot carry such an id,
		// so no record has it.
		return userstore.NotFound, nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var (
		found, active bool
		err           error
	)
	if kind == userstore.User {
		var resp *directoryv1.GetUserResponse
		resp, err = o.client.GetUser(ctx, &directoryv1.GetUserRequest{Id: id})
		found, active = resp.GetUser() != nil, resp.GetUser().GetActive()
	} else {
		var resp *directoryv1.GetApplicationResponse
		resp, err = o.client.GetApplication(ctx, &directoryv1.GetApplicationRequest{ClientId: id})
		found, active = resp.GetApplication() != nil, resp.GetApplication().GetActive()
	}
	switch {
	case err != nil:
		switch status.Code(err) {
		case codes.NotFound, codes.InvalidArgument:
			return userstore.NotFound, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return userstore.NotFound, fmt.Errorf("grpcorigin: lookup %s: %w: %w", kind, userstore.ErrUnavailable, err)
	case !found:
		return userstore.Inactive, fmt.Errorf("grpcorigin: %s record: %w: the answer holds no record", kind, userstore.ErrInvalidRecord)
	case active:
		return userstore.Active, nil
	default:
		return userstore.Inactive, nil
	}
}

// Close closes the connection. Lookups after Close fail with ErrUnavailable.
func (o *Origin) Close() error { return o.conn.Close() }
