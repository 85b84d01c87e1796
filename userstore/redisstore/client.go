package redisstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is the kind of Redis deployment a client talks to.
type Mode string

// Deployment modes.
const (
	Standalone Mode = "standalone"
	Sentinel   Mode = "sentinel"
	Cluster    Mode = "cluster"
)

// ClientConfig describes a Redis deployment. A URL, explicit addresses, or
// both (the explicit settings then override the URL's) select it:
//
//	redis://[user:pass@]host:port[/db][?opt=v]                standalone
//	rediss://...                                                standalone, TLS
//	unix://[user:pass@]/path/to/redis.sock[?db=N]               standalone, Unix socket
//	redis-sentinel://[user:pass@]host:port[,host:port...][/db]?master_name=NAME
//	rediss-sentinel://...                                       Sentinel, TLS to every node
//	redis-cluster://[user:pass@]host:port[,host:port...]       Cluster
//	rediss-cluster://...                                        Cluster, TLS
//
// In a sentinel URL the user info is the data nodes' credentials; the
// sentinels' own password (when they require one) is SentinelPassword or the
// sentinel_password query parameter.
type ClientConfig struct {
	URL string

	// SentinelMaster and SentinelAddrs select Sentinel without a URL (or
	// override the URL's).
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelUsername string
	SentinelPassword string
	// ClusterAddrs selects Cluster without a URL.
	ClusterAddrs []string

	// Username and Password, when set, override the URL's credentials.
	Username string
	Password string

	// TLS: any of these turns TLS on. CAFile replaces the system roots;
	// CertFile and KeyFile (both or neither) are a client certificate.
	TLSCAFile     string
	TLSCertFile   string
	TLSKeyFile    string
	TLSServerName string
}

// Mode returns the deployment c selects; an error names a conflict.
func (c ClientConfig) Mode() (Mode, error) {
	scheme := ""
	if c.URL != "" {
		if i := strings.Index(c.URL, "://"); i > 0 {
			scheme = c.URL[:i]
		}
	}
	sentinel := scheme == "redis-sentinel" || scheme == "rediss-sentinel" || len(c.SentinelAddrs) > 0 || c.SentinelMaster != ""
	cluster := scheme == "redis-cluster" || scheme == "rediss-cluster" || len(c.ClusterAddrs) > 0
	switch {
	case sentinel && cluster:
		return "", errors.New("both Sentinel and Cluster settings are set; choose one deployment")
	case sentinel:
		return Sentinel, nil
	case cluster:
		return Cluster, nil
	case c.URL == "":
		return "", errors.New("no Redis configured")
	default:
		return Standalone, nil
	}
}

// hostList parses "host:port[,host:port...]", refusing empty or malformed
// entries. Errors name the entry: addresses are not secret.
func hostList(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, fmt.Errorf("address %q is not host:port", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("address %q has an invalid port", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no address")
	}
	return out, nil
}

// ParseAddrs parses a comma-separated list of host:port addresses.
func ParseAddrs(s string) ([]string, error) { return hostList(s) }

// multiURL is the parsed form of a sentinel or cluster URL.
type multiURL struct {
	tls                bool
	addrs              []string
	user, pass         string
	db                 int
	master             string
	sentinelUser       string
	sentinelPass       string
	hasUser, hasPasswd bool
}

// parseMultiURL parses redis-sentinel:// and redis-cluster:// URLs. net/url
// refuses a host list, so the authority is split by hand. Errors never quote
// the user info.
//
// go-redis has ParseFailoverURL and ParseClusterURL, and they are not used
// here on purpose, because their URLs mean other things than gatehouse's
// documented ones (docs/directory.md, Redis deployments):
//   - in ParseFailoverURL the user info is the sentinels' credentials and the
//     data nodes' password travels as a password= query parameter; in
//     gatehouse's URL the user info is the data nodes' credentials, as in a
//     plain redis:// URL, and the sentinels' come from sentinel_username and
//     sentinel_password;
//   - both accept skip_verify=true (TLS without certificate checks) and every
//     pool and timeout option as query parameters, which would let a URL
//     override what gatehouse sets (timeouts bounded by GATEHOUSE_REDIS_TIMEOUT,
//     the cluster reload interval): gatehouse refuses any parameter it does
//     not know;
//   - extra hosts go in repeated addr= parameters, not in the host list;
//   - their errors may quote the address list and the URL parse error, which
//     can hold the password.
//
// Single-node redis:// and rediss:// URLs, whose meaning is the same, are
// parsed by go-redis's ParseURL (NewUniversalClient).
func parseMultiURL(raw string) (multiURL, error) {
	var m multiURL
	scheme, rest, _ := strings.Cut(raw, "://")
	m.tls = strings.HasPrefix(scheme, "rediss")
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		info := authority[:at]
		authority = authority[at+1:]
		u, p, hasP := strings.Cut(info, ":")
		var err error
		if m.user, err = url.PathUnescape(u); err != nil {
			return m, errors.New("malformed user name in the URL")
		}
		if m.pass, err = url.PathUnescape(p); err != nil {
			return m, errors.New("malformed password in the URL")
		}
		m.hasUser, m.hasPasswd = m.user != "", hasP
	}
	addrs, err := hostList(authority)
	if err != nil {
		return m, err
	}
	m.addrs = addrs
	path, query, _ := strings.Cut(tail, "?")
	if p := strings.Trim(path, "/"); p != "" {
		if m.db, err = strconv.Atoi(p); err != nil || m.db < 0 {
			return m, fmt.Errorf("database %q is not a number", p)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return m, errors.New("malformed query string")
	}
	for k := range q {
		switch k {
		case "master_name", "sentinel_username", "sentinel_password":
		default:
			return m, fmt.Errorf("unknown query parameter %q (known: master_name, sentinel_username, sentinel_password)", k)
		}
	}
	m.master = q.Get("master_name")
	m.sentinelUser = q.Get("sentinel_username")
	m.sentinelPass = q.Get("sentinel_password")
	return m, nil
}

// tlsConfig builds the TLS configuration the settings ask for, or nil when
// TLS is off. on forces TLS (a rediss scheme).
func (c ClientConfig) tlsConfig(on bool, host string) (*tls.Config, error) {
	if !on && c.TLSCAFile == "" && c.TLSCertFile == "" && c.TLSKeyFile == "" && c.TLSServerName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s: no PEM certificate found", c.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return nil, errors.New("TLS client certificate: set both the certificate file and the key file, or neither")
	}
	if c.TLSCertFile != "" {
		// The error of LoadX509KeyPair names files and PEM problems, never
		// key material.
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// connBufferSize sizes each pooled connection's read and write buffers.
// A lookup is one HGET with a reply of a few bytes; go-redis's 32 KiB default
// would hold 64 KiB per connection (over 1 MiB for a pool of 20) to carry
// them. A longer reply is still read whole, only in more than one read.
// Pipelines (imports, invalidation batches) keep their own pool and larger
// buffers.
const connBufferSize = 4 << 10

// NewUniversalClient builds the client c describes (it checks c with
// Validate first, and reads the TLS files; it does not dial). Every client honours
// context deadlines (ContextTimeoutEnabled), so Options.Timeout and the
// request's deadline bound every call. Errors never contain a password.
func NewUniversalClient(c ClientConfig) (redis.UniversalClient, Mode, error) {
	if err := c.Validate(); err != nil {
		return nil, "", err
	}
	mode, err := c.Mode()
	if err != nil {
		return nil, "", err
	}
	switch mode {
	case Standalone:
		opt, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, "", fmt.Errorf("invalid Redis URL: %w", redactURLError(c.URL, err))
		}
		if c.Username != "" {
			opt.Username = c.Username
		}
		if c.Password != "" {
			opt.Password = c.Password
		}
		// rediss:// already made a TLS configuration (with the URL's own
		// options); the TLS settings replace it when any is set.
		host, _, _ := net.SplitHostPort(opt.Addr)
		tc, err := c.tlsConfig(false, host)
		if err != nil {
			return nil, "", err
		}
		if tc != nil {
			opt.TLSConfig = tc
		}
		opt.ContextTimeoutEnabled = true
		if opt.ReadBufferSize == 0 {
			opt.ReadBufferSize = connBufferSize
		}
		if opt.WriteBufferSize == 0 {
			opt.WriteBufferSize = connBufferSize
		}
		return redis.NewClient(opt), mode, nil
	default:
		uo, err := c.multiOptions(mode)
		if err != nil {
			return nil, "", err
		}
		if mode == Sentinel {
			return redis.NewFailoverClient(uo.Failover()), mode, nil
		}
		co := uo.Cluster()
		// go-redis reloads the slot map early only on MOVED, ASK and
		// READONLY replies; a master that died answers none, so its
		// promoted replica would be found only at this periodic reload
		// (60 s by default). The store also asks for a reload after a
		// connection error (see Store.Partition and cluster.go).
		co.ClusterStateReloadInterval = ClusterStateReloadInterval
		return redis.NewClusterClient(co), mode, nil
	}
}

// ClusterStateReloadInterval is how often a Cluster client refreshes its
// slot map when nothing else makes it: the longest a promoted replica can go
// unnoticed when no lookup reaches its shard.
const ClusterStateReloadInterval = 2 * time.Second

// multiOptions builds the go-redis options of a Sentinel or Cluster
// deployment.
func (c ClientConfig) multiOptions(mode Mode) (*redis.UniversalOptions, error) {
	uo, useTLS, err := c.multiForm(mode)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(uo.Addrs[0])
	if c.TLSServerName == "" && len(uo.Addrs) > 1 {
		host = "" // each node is verified against its own address
	}
	tc, err := c.tlsConfig(useTLS, host)
	if err != nil {
		return nil, err
	}
	uo.TLSConfig = tc
	return uo, nil
}

// multiForm is multiOptions without TLS, which reads files: the form of a
// Sentinel or Cluster deployment, checked by Validate too.
func (c ClientConfig) multiForm(mode Mode) (*redis.UniversalOptions, bool, error) {
	uo := &redis.UniversalOptions{
		ContextTimeoutEnabled: true,
		ReadBufferSize:        connBufferSize,
		WriteBufferSize:       connBufferSize,
	}
	useTLS := false
	if c.URL != "" {
		m, err := parseMultiURL(c.URL)
		if err != nil {
			return nil, false, fmt.Errorf("invalid Redis URL: %w", err)
		}
		uo.Addrs, uo.DB, uo.MasterName = m.addrs, m.db, m.master
		uo.Username, uo.Password = m.user, m.pass
		uo.SentinelUsername, uo.SentinelPassword = m.sentinelUser, m.sentinelPass
		useTLS = m.tls
	}
	if mode == Sentinel {
		if len(c.SentinelAddrs) > 0 {
			uo.Addrs = c.SentinelAddrs
		}
		if c.SentinelMaster != "" {
			uo.MasterName = c.SentinelMaster
		}
		if c.SentinelUsername != "" {
			uo.SentinelUsername = c.SentinelUsername
		}
		if c.SentinelPassword != "" {
			uo.SentinelPassword = c.SentinelPassword
		}
		if uo.MasterName == "" {
			return nil, false, errors.New("sentinel mode needs a master name (master_name in the URL, or the sentinel master setting)")
		}
		if len(uo.Addrs) == 0 {
			return nil, false, errors.New("sentinel mode needs at least one sentinel address")
		}
	} else {
		if len(c.ClusterAddrs) > 0 {
			uo.Addrs = c.ClusterAddrs
		}
		if uo.DB != 0 {
			return nil, false, errors.New("cluster mode has only database 0")
		}
		if len(uo.Addrs) == 0 {
			return nil, false, errors.New("cluster mode needs at least one node address")
		}
		uo.IsClusterMode = true
	}
	if c.Username != "" {
		uo.Username = c.Username
	}
	if c.Password != "" {
		uo.Password = c.Password
	}
	return uo, useTLS, nil
}
