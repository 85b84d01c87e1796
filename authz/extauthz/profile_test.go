package extauthz

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/internal/profiletest"
)

// TestProfileRows runs every row of both Meet profiles through the gRPC
// adapter: in process, and over a loopback socket with grpc-go and
// connect-go. Rows of one setup share a server, as a deployment would.
func TestProfileRows(t *testing.T) {
	now := time.Now()
	for _, p := range [...]authz.Profile{authz.Profile202510, authz.Profile202608} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			bySetup := map[profiletest.Setup][]checker{}
			for _, row := range profiletest.Rows() {
				cs, ok := bySetup[row.Setup]
				if !ok {
					a, err := authz.New(profiletest.Options(p, row.Setup, profiletest.Directory(), nil))
					if err != nil {
						t.Fatalf("authz.New: %v", err)
					}
					cs = checkers(t, New(a, Options{}))
					bySetup[row.Setup] = cs
				}
				h, err := row.Token.Authorization(now)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs {
					t.Run(c.name+"/"+row.Topic+"/"+row.Name, func(t *testing.T) {
						req := loadFixture(t, "front_envoy_http1_get.json")
						http := req.GetAttributes().GetRequest().GetHttp()
						http.Method = row.MethodOf()
						http.Headers[pseudoMethod] = row.MethodOf()
						setPath(req, row.PathOf())
						setRequestHeader(req, headerAuthorization, []byte(h), h != "")
						resp, err := c.check(testCtx(t), req)
						if err != nil {
							t.Fatalf("Check: %v", err)
						}
						mustMarshal(t, resp)
						checkRowResponse(t, resp, row.Want[p])
					})
				}
			}
		})
	}
}

// checkRowResponse compares a CheckResponse with a row's answer.
func checkRowResponse(t *testing.T, resp *authv3.CheckResponse, w profiletest.Want) {
	t.Helper()
	if got := metaString(resp, metaReason); got != string(w.Reason) {
		t.Fatalf("reason %q, want %q", got, w.Reason)
	}
	if w.Status == http.StatusOK {
		ok := resp.GetOkResponse()
		if resp.GetStatus().GetCode() != 0 || ok == nil {
			t.Fatalf("not an allow: %v", resp)
		}
		up := upstreamHeaders(map[string][]string{
			"x-auth-user-id": {"forged"}, "x-auth-client-id": {"forged"}, "x-auth-scope": {"forged"},
		}, ok)
		for name, want := range map[string]string{
			"x-auth-user-id": profiletest.ActiveUser, "x-auth-client-id": w.ClientID, "x-auth-scope": w.Scope,
		} {
			got, present := up[name]
			switch {
			case want == "" && present:
				t.Errorf("upstream gets %s %q, want none", name, got)
			case want != "" && (len(got) != 1 || got[0] != want):
				t.Errorf("upstream gets %s %q, want %q", name, got, want)
			}
		}
		return
	}
	denied := resp.GetDeniedResponse()
	if resp.GetStatus().GetCode() == 0 || denied == nil {
		t.Fatalf("not a deny: %v", resp)
	}
	if got := int(denied.GetStatus().GetCode()); got != w.Status {
		t.Fatalf("status %d, want %d", got, w.Status)
	}
	var body struct{ Detail string }
	if err := json.Unmarshal([]byte(denied.GetBody()), &body); err != nil || body.Detail != w.Message {
		t.Fatalf("body %s, want detail %q", denied.GetBody(), w.Message)
	}
	hdr := responseHeaders(t, denied.GetHeaders())
	if got := hdr[headerAllow]; got != w.Allow {
		t.Errorf("allow header %q, want %q", got, w.Allow)
	}
	if _, has := hdr[headerWWWAuthenticate]; has != (w.Status == http.StatusUnauthorized || w.Reason == authz.ReasonNoScope ||
		w.Reason == authz.ReasonMissingScope) {
		t.Errorf("www-authenticate %q on a %d %s", hdr[headerWWWAuthenticate], w.Status, w.Reason)
	}
}
