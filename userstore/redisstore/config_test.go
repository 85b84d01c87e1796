package redisstore

import (
	"strings"
	"testing"
)

// TestValidate: the form of a deployment is checked without dialling or
// reading a file, and errors never show a password. (The checks the
// settings made of the URL before it was moved here.)
func TestValidate(t *testing.T) {
	const pw = "validate-pw"
	for _, c := range []struct {
		name string
		cc   ClientConfig
		want string // "" means valid
	}{
		{"standalone", ClientConfig{URL: "redis://u:" + pw + "@127.0.0.1:6379/0"}, ""},
		{"unix socket", ClientConfig{URL: "unix:///run/redis.sock"}, ""},
		{"sentinel url", ClientConfig{URL: "redis-sentinel://a:1,b:2/0?master_name=m"}, ""},
		{"cluster addresses", ClientConfig{ClusterAddrs: []string{"a:1", "b:2"}}, ""},
		// The CA file is read when the client is built, not here.
		{"missing CA file", ClientConfig{URL: "rediss://a:1", TLSCAFile: "/nonexistent/ca.pem"}, ""},
		{"scheme", ClientConfig{URL: "http://u:" + pw + "@127.0.0.1:6379"}, `unsupported scheme "http"`},
		{"no host", ClientConfig{URL: "redis://"}, "missing host"},
		{"no socket path", ClientConfig{URL: "unix://"}, "missing socket path"},
		{"unparseable", ClientConfig{URL: "redis://u:" + pw + "@[::1"}, "not a valid URL"},
		{"bad database", ClientConfig{URL: "redis://u:" + pw + "@a:1/x"}, "invalid Redis URL"},
		{"sentinel without master", ClientConfig{URL: "redis-sentinel://u:" + pw + "@a:1,b:2/0"}, "master name"},
		{"bad sentinel address", ClientConfig{URL: "redis-sentinel://u:" + pw + "@a:x/0?master_name=m"}, "invalid port"},
		{"cluster db", ClientConfig{URL: "redis-cluster://a:1/3"}, "database 0"},
		{"both deployments", ClientConfig{SentinelAddrs: []string{"a:1"}, ClusterAddrs: []string{"b:2"}}, "choose one"},
		{"nothing", ClientConfig{}, "no Redis"},
		{"half a client certificate", ClientConfig{URL: "rediss://a:1", TLSKeyFile: "/k"}, "both"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cc.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password: %v", err)
			}
			// The builder refuses it the same way, before dialling.
			if client, _, berr := NewUniversalClient(c.cc); berr == nil || berr.Error() != err.Error() {
				if client != nil {
					client.Close()
				}
				t.Errorf("NewUniversalClient = %v, want Validate's %v", berr, err)
			}
		})
	}
}

func TestRedactAndDescribe(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "",
		"redis://h:1/0":                "redis://h:1/0",
		"redis://u:pw@h:1/0":           "redis://u:REDACTED@h:1/0",
		"redis://h:1/0?password=pw":    "redis://h:1/0?password=REDACTED",
		"redis://u:pw@[::1":            "[unparseable URL REDACTED]",
		"rediss-sentinel://u:pw@a:1/0": "rediss-sentinel://u:REDACTED@a:1/0",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	for cc, want := range map[*ClientConfig]string{
		{URL: "redis://u:pw@h:1/0"}:                                       "redis://u:REDACTED@h:1/0",
		{SentinelAddrs: []string{"a:1", "b:2"}, SentinelMaster: "m"}:      "sentinel a:1,b:2 master m",
		{ClusterAddrs: []string{"a:1"}, Password: "pw", Username: "user"}: "cluster a:1",
	} {
		if got := cc.Describe(); got != want {
			t.Errorf("Describe(%+v) = %q, want %q", *cc, got, want)
		}
	}
}
