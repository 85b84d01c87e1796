package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit/certtest"
	"github.com/gatehouse-authz/gatehouse/internal/testkit/proxytest"
)

// nginxTLSConf is nginx's auth_request to gatehouse's forward-auth listener
// over mutual TLS, with the proxy_ssl_* directives docs/deploy.md shows:
// "/" presents the proxy's client certificate; "/nocert/" presents none and
// "/wrongca/" trusts another CA, and both must fail closed (nginx answers
// 500 when the subrequest cannot be made).
const nginxTLSConf = `events {}
http {
    # One upstream block per set of proxy_ssl_* settings: nginx shares an
    # upstream's keepalive connections (and TLS sessions) among all the
    # locations using it, so a location without a client certificate would
    # otherwise reuse a connection another location authenticated.
    upstream gatehouse {
        server {{GATEHOUSE}};
        keepalive 4;
    }
    upstream gatehouse_nocert {
        server {{GATEHOUSE}};
    }
    upstream gatehouse_wrongca {
        server {{GATEHOUSE}};
    }
    server {
        listen {{LISTEN}};
        location / {
            auth_request /_gatehouse;
            auth_request_set $gatehouse_user_id $upstream_http_x_auth_user_id;
            proxy_set_header X-Auth-User-Id $gatehouse_user_id;
            proxy_pass http://{{UPSTREAM}};
        }
        location /nocert/ {
            auth_request /_gatehouse_nocert;
            proxy_pass http://{{UPSTREAM}};
        }
        location /wrongca/ {
            auth_request /_gatehouse_wrongca;
            proxy_pass http://{{UPSTREAM}};
        }
        location = /_gatehouse {
            internal;
            proxy_pass https://gatehouse/check;
{{CHECK}}
            proxy_ssl_trusted_certificate {{CA}};
            proxy_ssl_certificate         {{CERT}};
            proxy_ssl_certificate_key     {{KEY}};
        }
        location = /_gatehouse_nocert {
            internal;
            proxy_pass https://gatehouse_nocert/check;
{{CHECK}}
            proxy_ssl_trusted_certificate {{CA}};
        }
        location = /_gatehouse_wrongca {
            internal;
            proxy_pass https://gatehouse_wrongca/check;
{{CHECK}}
            proxy_ssl_trusted_certificate {{OTHERCA}};
            proxy_ssl_certificate         {{CERT}};
            proxy_ssl_certificate_key     {{KEY}};
        }
    }
}
`

// nginxCheckDirectives are the subrequest's usual directives plus TLS:
// verify gatehouse's certificate against the name it carries, keep TLS
// sessions on the keepalive connections.
const nginxCheckDirectives = `            proxy_pass_request_body off;
            proxy_set_header Content-Length    "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI    $request_uri;
            proxy_set_header Host              $host;
            proxy_http_version 1.1;
            proxy_set_header Connection        "";
            proxy_ssl_protocols    TLSv1.2 TLSv1.3;
            proxy_ssl_verify       on;
            proxy_ssl_name         localhost;
            proxy_ssl_server_name  on;
            proxy_ssl_session_reuse on;`

// TestNginxOverMutualTLS: real nginx reaches the forward-auth listener over
// mutual TLS: a valid token is allowed with its identity; without the
// client certificate, or trusting another CA, the check cannot be made and
// nginx refuses the request (500), never lets it through.
func TestNginxOverMutualTLS(t *testing.T) {
	ts := newTLSSetup(t, true)
	cfg := baseConfig(t)
	cfg.UsersFile = usersFile(t)
	ts.apply(&cfg)
	gh := startTLS(t, cfg, Options{}, ts.clientConfig(&ts.client))

	dir := t.TempDir()
	clientCert, clientKey := ts.client.WriteFiles(t, dir, "nginx-client")
	caFile := ts.ca.WriteFile(t, dir, "gatehouse-ca.crt")
	otherCA := certtest.NewCA(t, "not gatehouse's CA").WriteFile(t, dir, "other-ca.crt")
	up := proxytest.StartUpstream(t)
	p := proxytest.StartNginx(t, func(listen string) (string, error) {
		return strings.NewReplacer(
			"{{GATEHOUSE}}", gh.srv.HTTPAddr().String(), "{{LISTEN}}", listen, "{{UPSTREAM}}", up.Addr(),
			"{{CHECK}}", nginxCheckDirectives, "{{CA}}", caFile, "{{OTHERCA}}", otherCA,
			"{{CERT}}", clientCert, "{{KEY}}", clientKey,
		).Replace(nginxTLSConf), nil
	})

	client := &http.Client{Timeout: 5 * time.Second}
	do := func(path, auth string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", p.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	bearer := "Bearer " + token(t, activeUser)

	// Several requests: the later ones reuse nginx's keepalive TLS
	// connection.
	for i := range 3 {
		code, body := do(fmt.Sprintf("/v1/rooms?i=%d", i), bearer)
		if code != http.StatusOK {
			t.Fatalf("allowed request: %d %s\nnginx log: %s", code, body, p.Log())
		}
		e, err := proxytest.DecodeEcho([]byte(body))
		if err != nil || e.Header.Get("X-Auth-User-Id") != activeUser {
			t.Fatalf("upstream saw %+v, %v", e, err)
		}
	}
	if code, _ := do("/v1/rooms", ""); code != http.StatusUnauthorized {
		t.Errorf("no token over TLS: %d, want 401", code)
	}
	for _, path := range []string{"/nocert/v1/rooms", "/wrongca/v1/rooms"} {
		if code, body := do(path, bearer); code != http.StatusInternalServerError {
			t.Errorf("%s: %d %s, want nginx's 500 (the check could not be made)", path, code, body)
		}
	}
	if n := len(up.Requests()); n != 3 {
		t.Errorf("upstream got %d requests, want the 3 allowed", n)
	}
}
