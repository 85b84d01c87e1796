package deploycheck

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	corev1 "k8s.io/api/core/v1"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/config"
)

const (
	istioMeshExample   = "examples/istio/istiod-values.yaml"
	istioPolicyExample = "examples/istio/authorization-policy.yaml"
)

// decodeMeshConfig decodes a YAML document whose only key is meshConfig
// (istiod's Helm values) strictly into istio.io/api's MeshConfig.
func decodeMeshConfig(doc []byte) (*meshv1alpha1.MeshConfig, error) {
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	if err := decodeYAMLStrict(doc, &values); err != nil {
		return nil, err
	}
	if len(values.MeshConfig) == 0 {
		return nil, fmt.Errorf("no meshConfig")
	}
	mc := &meshv1alpha1.MeshConfig{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(values.MeshConfig, mc); err != nil {
		return nil, fmt.Errorf("decode MeshConfig: %w", err)
	}
	return mc, nil
}

// decodeAuthorizationPolicy decodes an AuthorizationPolicy resource: the
// envelope strictly, the spec strictly with protojson.
func decodeAuthorizationPolicy(doc []byte) (*authorizationPolicy, error) {
	var env istioEnvelope
	if err := decodeYAMLStrict(doc, &env); err != nil {
		return nil, err
	}
	if env.APIVersion != "security.istio.io/v1" || env.Kind != "AuthorizationPolicy" {
		return nil, fmt.Errorf("%s %s: want security.istio.io/v1 AuthorizationPolicy", env.APIVersion, env.Kind)
	}
	spec, err := decodeIstioSpec(env.Spec)
	if err != nil {
		return nil, err
	}
	return &authorizationPolicy{env.ObjectMeta, spec}, nil
}

// provider returns the extension provider called name.
func provider(mc *meshv1alpha1.MeshConfig, name string) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider {
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == name {
			return p.GetEnvoyExtAuthzGrpc()
		}
	}
	return nil
}

// checkProvider: the settings every gatehouse provider needs.
func checkProvider(t *testing.T, what string, p *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider) {
	t.Helper()
	if p == nil {
		t.Fatalf("%s: no envoyExtAuthzGrpc provider", what)
	}
	if p.GetTimeout() == nil {
		t.Errorf("%s: no timeout: Istio's default is 600s", what)
	} else {
		checkProxyTimeout(t, what, p.GetTimeout().AsDuration())
	}
	if p.GetFailOpen() {
		t.Errorf("%s: failOpen is true: gatehouse being down would let every request through", what)
	}
	if p.GetStatusOnError() != "503" {
		t.Errorf("%s: statusOnError %q, want \"503\"", what, p.GetStatusOnError())
	}
	if p.GetPort() != 9000 {
		t.Errorf("%s: port %d, want gatehouse's gRPC port 9000", what, p.GetPort())
	}
	if p.GetIncludeRequestBodyInCheck() != nil {
		t.Errorf("%s: includeRequestBodyInCheck set: gatehouse never reads the body", what)
	}
}

// istioPathMatches implements Istio's path matching of an operation: exact,
// prefix "x*", suffix "*x", or "*".
func istioPathMatches(pattern, path string) bool {
	switch {
	case pattern == "*":
		return path != ""
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	default:
		return pattern == path
	}
}

// customPolicyMatches reports whether a CUSTOM policy sends a request with
// path to its provider, as Istio matches rules: a policy without rules
// matches nothing, an empty rule (or one without "to", or an operation
// without paths) matches every request. Only the path-based parts are
// modelled; a rule with anything else is refused by the test.
func customPolicyMatches(t *testing.T, spec *securityv1beta1.AuthorizationPolicy, path string) bool {
	t.Helper()
	for _, r := range spec.GetRules() {
		if len(r.GetFrom()) > 0 || len(r.GetWhen()) > 0 {
			t.Fatalf("rule %v: only to.operation paths are modelled by this test", r)
		}
		if len(r.GetTo()) == 0 {
			return true
		}
		for _, to := range r.GetTo() {
			op := to.GetOperation()
			if len(op.GetNotPaths()) > 0 || len(op.GetHosts()) > 0 || len(op.GetNotHosts()) > 0 || len(op.GetPorts()) > 0 || len(op.GetNotPorts()) > 0 || len(op.GetMethods()) > 0 || len(op.GetNotMethods()) > 0 {
				t.Fatalf("operation %v: exclusions would take requests away from gatehouse, and a client's identity headers would pass them unchecked", op)
			}
			if len(op.GetPaths()) == 0 {
				return true
			}
			for _, p := range op.GetPaths() {
				if istioPathMatches(p, path) {
					return true
				}
			}
		}
	}
	return false
}

// checkPolicyCoversEveryPath: spec sends every request of the workload to
// gatehouse. ext_authz runs only where a CUSTOM rule matches (Istio sets
// the filter's enabled-metadata from the rules), so a request it does not
// match reaches the backend with whatever identity headers the client sent.
func checkPolicyCoversEveryPath(t *testing.T, what string, spec *securityv1beta1.AuthorizationPolicy) {
	t.Helper()
	for _, path := range append([]string{apiTokenPath, apiRoomsPath, "/external-api/v1.0/rooms/abc-defg-hij/", "/external-api/v2.0/future/"}, pathsOutsideAPI...) {
		if !customPolicyMatches(t, spec, path) {
			t.Errorf("%s does not send %s to gatehouse: a client's %s would reach the backend unchecked", what, path, config.DefaultHeaderUserID)
		}
	}
}

func TestIstioExamples(t *testing.T) {
	t.Parallel()
	mc, err := decodeMeshConfig(readRepoFile(t, istioMeshExample))
	if err != nil {
		t.Fatalf("%s: %v", istioMeshExample, err)
	}
	ap, err := decodeAuthorizationPolicy(readRepoFile(t, istioPolicyExample))
	if err != nil {
		t.Fatalf("%s: %v", istioPolicyExample, err)
	}
	name := ap.Spec.GetProvider().GetName()
	p := provider(mc, name)
	if p == nil {
		t.Fatalf("%s uses provider %q, which %s does not define", istioPolicyExample, name, istioMeshExample)
	}
	checkProvider(t, istioMeshExample, p)
	// The chart's Service for release "gatehouse" in namespace "gatehouse".
	m := render(t, ciValues("defaults")...)
	svc := named[corev1.Service](m, release)
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); p.GetService() != want {
		t.Errorf("provider service %q, want the chart's %q", p.GetService(), want)
	}
	if got := mc.GetPathNormalization().GetNormalization(); got != meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES {
		t.Errorf("pathNormalization %v: want DECODE_AND_MERGE_SLASHES so that encoded or doubled slashes cannot dodge the policy's paths", got)
	}

	if ap.Spec.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
		t.Errorf("action %v, want CUSTOM", ap.Spec.GetAction())
	}
	if ap.Namespace == "" || len(ap.Spec.GetSelector().GetMatchLabels()) == 0 {
		t.Errorf("the policy needs a namespace and a selector, or it applies to every workload")
	}
	checkPolicyCoversEveryPath(t, istioPolicyExample, ap.Spec)
	// The token endpoint needs no token: gatehouse's table says so, not
	// the policy.
	if !routes.Meet().Match(&authz.Request{Method: "POST", Path: apiTokenPath}).Public {
		t.Errorf("the token endpoint is not public in gatehouse's meet table, as %s says", istioPolicyExample)
	}
	// The policy sends every path; gatehouse must then answer the paths
	// outside the external API with a public allow: the recipe points to
	// the routes file that does.
	if !strings.Contains(string(readRepoFile(t, istioPolicyExample)), allPathsRoutesExample) {
		t.Errorf("%s does not tell to install gatehouse with %s", istioPolicyExample, allPathsRoutesExample)
	}
}

// TestIstioRecipeStripsForgedIdentity runs the Istio recipe's intent end to
// end: the policy decides which requests the sidecar checks, a real
// gatehouse with the recipe's routes file answers them over gRPC, and the
// sidecar's handling of the answer gives what the backend sees. A forged
// identity header never reaches it, on any path.
func TestIstioRecipeStripsForgedIdentity(t *testing.T) {
	t.Parallel()
	ap, err := decodeAuthorizationPolicy(readRepoFile(t, istioPolicyExample))
	if err != nil {
		t.Fatalf("%s: %v", istioPolicyExample, err)
	}
	g := startGatehouse(t, filepath.Join(repoRoot(t), filepath.FromSlash(allPathsRoutesExample)))
	sidecar := func(method, path string, h http.Header) (codes.Code, http.Header) {
		return g.sidecarUpstreamHeaders(t, customPolicyMatches(t, ap.Spec, path), method, path, h)
	}
	for _, path := range append([]string{apiTokenPath}, pathsOutsideAPI...) {
		for _, method := range []string{"GET", "POST"} {
			if path == apiTokenPath && method == "GET" {
				continue // only POST is public there
			}
			code, up := sidecar(method, path, forgedIdentity())
			if code != codes.OK {
				t.Errorf("%s %s without a token: %v, want a public allow", method, path, code)
				continue
			}
			checkUpstreamIdentity(t, method+" "+path, up, [3]string{})
		}
	}
	// Meet's external API: the real identity only, never the forged one.
	code, up := sidecar("GET", apiRoomsPath, mergeHeaders(forgedIdentity(), http.Header{"Authorization": {"Bearer " + g.token}}))
	if code != codes.OK {
		t.Fatalf("GET %s with a rooms:list token: %v", apiRoomsPath, code)
	}
	checkUpstreamIdentity(t, "GET "+apiRoomsPath, up, [3]string{g.userID, e2eClient, "rooms:list"})
	if code, up := sidecar("GET", apiRoomsPath, forgedIdentity()); code != codes.Unauthenticated || up != nil {
		t.Errorf("GET %s with forged identity and no token: %v, want UNAUTHENTICATED", apiRoomsPath, code)
	}
	if code, _ := sidecar("POST", apiRoomsPath, mergeHeaders(forgedIdentity(), http.Header{"Authorization": {"Bearer " + g.token}})); code != codes.PermissionDenied {
		t.Errorf("POST %s without rooms:create (forged x-auth-scope rooms:create): %v, want PERMISSION_DENIED", apiRoomsPath, code)
	}
}

// TestIstioDecodersAreStrict breaks the examples on purpose.
func TestIstioDecodersAreStrict(t *testing.T) {
	t.Parallel()
	mesh := string(readRepoFile(t, istioMeshExample))
	policy := string(readRepoFile(t, istioPolicyExample))
	for name, tc := range map[string]struct {
		doc, old, new string
		decode        func([]byte) error
	}{
		"mesh unknown field":   {mesh, "failOpen: false", "failopen: false", func(b []byte) error { _, err := decodeMeshConfig(b); return err }},
		"mesh other key":       {mesh, "meshConfig:", "meshconfig:", func(b []byte) error { _, err := decodeMeshConfig(b); return err }},
		"mesh bad duration":    {mesh, "timeout: 1s", "timeout: 1000ms", func(b []byte) error { _, err := decodeMeshConfig(b); return err }},
		"policy unknown field": {policy, "action: CUSTOM", "action: CUSTOM\n  actions: CUSTOM", func(b []byte) error { _, err := decodeAuthorizationPolicy(b); return err }},
		"policy bad enum":      {policy, "action: CUSTOM", "action: EXTERNAL", func(b []byte) error { _, err := decodeAuthorizationPolicy(b); return err }},
		"policy envelope":      {policy, "metadata:", "metdata:", func(b []byte) error { _, err := decodeAuthorizationPolicy(b); return err }},
		"policy in operation":  {policy, "- {}", `- {to: [{operation: {path: ["/"]}}]}`, func(b []byte) error { _, err := decodeAuthorizationPolicy(b); return err }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(tc.doc, tc.old) {
				t.Fatalf("the example no longer contains %q: update this test", tc.old)
			}
			if err := tc.decode([]byte(strings.Replace(tc.doc, tc.old, tc.new, 1))); err == nil {
				t.Errorf("replacing %q by %q was accepted", tc.old, tc.new)
			}
		})
	}
}

// renderNotes renders the chart's NOTES.txt, which "helm template" skips: a
// copy of the chart gets a template that renders the notes into a ConfigMap
// with tpl, the same engine and context.
func renderNotes(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gatehouse")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(repoRoot(t), chartDir))); err != nil {
		t.Fatalf("copy the chart: %v", err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes-under-test.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	shim := `apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}
`
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes-under-test.yaml"), []byte(shim), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"template", args[0], dir, "--kube-version", kubeVersion, "--show-only", "templates/zz-notes-under-test.yaml"}
	out, err := runHelm(t, append(base, args[1:]...)...)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := decodeYAMLStrict([]byte(out), &cm); err != nil {
		t.Fatalf("notes: %v", err)
	}
	return cm.Data["notes"]
}

var notesMeshConfig = regexp.MustCompile(`(?s)# --- meshConfig ---\n(.*?)# --- end ---`)

// TestChartNotes: NOTES.txt prints an extension provider that decodes into
// MeshConfig, names the release's Service and matches the example's settings.
func TestChartNotes(t *testing.T) {
	t.Parallel()
	notes := renderNotes(t, "edge", "--namespace", "authz", "-f", filepath.Join(repoRoot(t), chartDir, "ci", "istio-values.yaml"))
	block := notesMeshConfig.FindStringSubmatch(notes)
	if block == nil {
		t.Fatalf("NOTES.txt has no meshConfig block:\n%s", notes)
	}
	mc, err := decodeMeshConfig([]byte(block[1]))
	if err != nil {
		t.Fatalf("NOTES.txt meshConfig: %v\n%s", err, block[1])
	}
	p := provider(mc, "gatehouse")
	checkProvider(t, "NOTES.txt", p)
	if want := "edge-gatehouse.authz.svc.cluster.local"; p.GetService() != want {
		t.Errorf("NOTES.txt provider service %q, want %q", p.GetService(), want)
	}
	ex, err := decodeMeshConfig(readRepoFile(t, istioMeshExample))
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(provider(ex, "gatehouse")).(*meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider)
	want.Service = p.GetService()
	if !proto.Equal(p, want) {
		t.Errorf("NOTES.txt provider %v differs from %s's %v", p, istioMeshExample, want)
	}
	if !strings.Contains(notes, "CUSTOM") || !strings.Contains(notes, "AuthorizationPolicy") {
		t.Errorf("NOTES.txt does not tell how the provider is used")
	}
}
