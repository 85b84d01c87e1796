package redistest

import (
	"crypto/tls"
	"testing"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/certtest"
)

// TLSFiles are PEM files made by StartTLS: a CA, the server's certificate
// (for 127.0.0.1 and "localhost") and a client certificate, all signed by
// the CA.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// ClientConfig trusts the CA and presents the client certificate.
	ClientConfig *tls.Config
}

// StartTLS launches a redis-server that speaks only TLS (--port 0) with
// certificates made for the test. With requireClientCert, clients must
// present a certificate signed by the CA (--tls-auth-clients yes);
// otherwise one is optional.
func StartTLS(t testing.TB, requireClientCert bool) (*Server, TLSFiles) {
	t.Helper()
	files := makeCerts(t)
	auth := "optional"
	if requireClientCert {
		auth = "yes"
	}
	s := start(t, func(srv *Server) []string {
		srv.portFlag = "--tls-port"
		return []string{
			"--tls-cert-file", files.ServerCert,
			"--tls-key-file", files.ServerKey,
			"--tls-ca-cert-file", files.CA,
			"--tls-auth-clients", auth,
		}
	}, files.ClientConfig)
	return s, files
}

// TLSURL returns a rediss:// URL for database 0.
func (s *Server) TLSURL() string { return "rediss://" + s.Addr() + "/0" }

func makeCerts(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca := certtest.NewCA(t, "gatehouse test CA")
	srv := ca.Server(t, "redis")
	cli := ca.Client(t, "gatehouse")
	f := TLSFiles{CA: ca.WriteFile(t, dir, "ca.pem")}
	f.ServerCert, f.ServerKey = srv.WriteFiles(t, dir, "server")
	f.ClientCert, f.ClientKey = cli.WriteFiles(t, dir, "client")
	f.ClientConfig = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cli.TLS}, MinVersion: tls.VersionTLS12}
	return f
}
