package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// minTLSVersion is the oldest protocol the gRPC and forward-auth listeners
// accept: TLS 1.0 and 1.1 are deprecated (RFC 8996), and every proxy
// gatehouse serves speaks 1.2 or 1.3.
const minTLSVersion = tls.VersionTLS12

// tlsMaterial is one loaded set of the listeners' TLS files: the serving
// certificate with its chain and key, and the CAs that sign client
// certificates (nil: none asked for).
type tlsMaterial struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool
	// describe is the certificate's subject, serial and expiry, for logs
	// and /readyz?verbose.
	describe string
	notAfter time.Time
}

// serverTLS serves the current tlsMaterial to new handshakes. A reload
// swaps the material; connections already open keep the certificate they
// were established with, new ones get the new one.
type serverTLS struct {
	certFile, keyFile, clientCAFile string
	cur                             atomic.Pointer[tlsMaterial]
	now                             func() time.Time
}

func newServerTLS(cfg Config, now func() time.Time) *serverTLS {
	if now == nil {
		now = time.Now
	}
	return &serverTLS{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, clientCAFile: cfg.TLSClientCAFile, now: now}
}

// files returns the files a reload reads.
func (s *serverTLS) files() []string {
	fs := []string{s.certFile, s.keyFile}
	if s.clientCAFile != "" {
		fs = append(fs, s.clientCAFile)
	}
	return fs
}

// load reads and checks every file, and returns the material without
// swapping it in: a certificate that does not match its key, is expired or
// not yet valid, or a CA file without a certificate, is an error naming the
// file, and the material in use stays.
func (s *serverTLS) load() (*tlsMaterial, error) {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		// The error names the files or the mismatch, never the key.
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", s.certFile, s.keyFile, err)
	}
	leaf := cert.Leaf // parsed by LoadX509KeyPair
	if leaf == nil {
		return nil, fmt.Errorf("TLS certificate %s: no certificate", s.certFile)
	}
	now := s.now()
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("TLS certificate %s expired at %s", s.certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("TLS certificate %s is not valid before %s", s.certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	m := &tlsMaterial{
		cert:     &cert,
		notAfter: leaf.NotAfter,
		describe: fmt.Sprintf("certificate %q serial %s expires %s", leaf.Subject.String(), leaf.SerialNumber.Text(16),
			leaf.NotAfter.UTC().Format(time.RFC3339)),
	}
	if s.clientCAFile != "" {
		pem, err := os.ReadFile(s.clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA file: %w", err)
		}
		m.clientCAs = x509.NewCertPool()
		if !m.clientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS client CA file %s holds no PEM certificate", s.clientCAFile)
		}
		m.describe += "; client certificates required"
	}
	return m, nil
}

// config returns the tls.Config of a listener speaking nextProtos (ALPN).
// Each handshake reads the material in use then, so that a reloaded
// certificate or CA applies to the next connection without a restart.
func (s *serverTLS) config(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: minTLSVersion,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			if m == nil {
				return nil, errors.New("no TLS certificate loaded")
			}
			c := &tls.Config{
				MinVersion:   minTLSVersion,
				NextProtos:   nextProtos,
				Certificates: []tls.Certificate{*m.cert},
			}
			if m.clientCAs != nil {
				// Mutual TLS: only a caller holding a certificate the
				// configured CAs signed (the proxy) gets past the
				// handshake.
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = m.clientCAs
			}
			return c, nil
		},
	}
}

// reloadable returns the TLS files' reloadable: the certificate, its key
// and the client CAs are checked together and swapped in together.
func (s *serverTLS) reloadable() *reloadable {
	return &reloadable{
		what:  reloadWhatTLS,
		files: s.files(),
		load: func() (func(), string, error) {
			m, err := s.load()
			if err != nil {
				return nil, "", err
			}
			return func() { s.cur.Store(m) }, m.describe, nil
		},
	}
}
