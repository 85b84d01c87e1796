package deploycheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// helmVersion is what .ci/run installs:
	// go install helm.sh/helm/v3/cmd/helm@v3.22.0
	helmVersion = "v3.22"
	chartDir    = "charts/gatehouse"
	release     = "gatehouse"
	namespace   = "gatehouse"
	// kubeVersion is passed to helm: a "go install"ed helm otherwise assumes
	// Kubernetes v1.20, which the chart's kubeVersion refuses.
	kubeVersion    = "1.34.0"
	minKubeVersion = "1.30.0"
	// serviceMonitorAPI is the API the ServiceMonitor template needs.
	serviceMonitorAPI = "monitoring.coreos.com/v1"
)

// authorizationService is the gRPC service name gatehouse's health service
// reports on besides "", taken from the generated ext_authz service.
var authorizationService = authv3.Authorization_ServiceDesc.ServiceName

// helmPath finds helm on PATH, or where "go install" puts it.
func helmPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command(goToolPath(), "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "helm")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("helm is not installed (not on PATH, nor in GOBIN or GOPATH/bin). .ci/run and make test install it with:\n\tgo install helm.sh/helm/v3/cmd/helm@%s.0", helmVersion)
	return ""
}

// runHelm runs helm with args in the repository root and returns its
// standard output; the error carries its standard error. Helm's cache,
// config and data directories point at a temporary directory, and
// KUBECONFIG at nothing, so that no local setup and no cluster is used.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, helmPath(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func goToolPath() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// TestHelmVersion checks that the helm found is the one .ci/run installs (or a
// later v3): the chart and these tests rely on Helm 3 behaviour.
func TestHelmVersion(t *testing.T) {
	t.Parallel()
	out, err := runHelm(t, "version", "--short")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "v3.") {
		t.Fatalf("helm version %q: want Helm 3 (go install helm.sh/helm/v3/cmd/helm@%s.0)", out, helmVersion)
	}
}

// helmTemplate renders the chart with args added to the usual ones.
func helmTemplate(t testing.TB, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	return runHelm(t, append(base, args...)...)
}

// valuesFile writes a values file and returns the "-f" arguments for it.
func valuesFile(t testing.TB, content string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-f", p}
}

// ciValues returns the -f argument of a ci/ scenario.
func ciValues(name string) []string {
	return []string{"-f", filepath.ToSlash(filepath.Join(chartDir, "ci", name+"-values.yaml"))}
}

// An object of the rendered chart, decoded strictly into its Go type.
type object struct {
	source     string // "# Source:" of the document
	apiVersion string
	kind       string
	meta       metav1.ObjectMeta
	value      any // *appsv1.Deployment, *corev1.Service, ... , *authorizationPolicy
}

// manifest is the rendered chart.
type manifest struct {
	objects []object
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor the
// chart may use: decoding it strictly refuses any other field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// certificate is the part of cert-manager's Certificate the chart may use:
// decoding it strictly refuses any other field.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName  string `json:"secretName"`
		Duration    string `json:"duration"`
		RenewBefore string `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		Usages    []string `json:"usages"`
		DNSNames  []string `json:"dnsNames"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// authorizationPolicy is an Istio AuthorizationPolicy: the Kubernetes
// envelope decoded strictly, the spec with protojson into istio.io/api's type.
type authorizationPolicy struct {
	metav1.ObjectMeta
	Spec *securityv1.AuthorizationPolicy
}

// istioEnvelope is the Kubernetes part of an Istio resource.
type istioEnvelope struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`
}

// decodeIstioSpec decodes spec JSON strictly into an istio.io/api message.
func decodeIstioSpec(spec []byte) (*securityv1.AuthorizationPolicy, error) {
	ap := &securityv1.AuthorizationPolicy{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(spec, ap); err != nil {
		return nil, fmt.Errorf("decode AuthorizationPolicy spec: %w", err)
	}
	return ap, nil
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: (.+)$`)

// parseManifest decodes every document of helm template's output strictly
// into its type; a kind the chart is not expected to render is an error.
func parseManifest(out string) (*manifest, error) {
	m := &manifest{}
	for _, doc := range splitYAMLDocs([]byte(out)) {
		src := ""
		if s := sourceLine.FindSubmatch(doc); s != nil {
			src = string(s[1])
		}
		j, err := yamlToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		var head metav1.TypeMeta
		if err := json.Unmarshal(j, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		var v any
		switch head.APIVersion + " " + head.Kind {
		case "v1 ConfigMap":
			v = &corev1.ConfigMap{}
		case "v1 Secret":
			v = &corev1.Secret{}
		case "v1 Service":
			v = &corev1.Service{}
		case "v1 ServiceAccount":
			v = &corev1.ServiceAccount{}
		case "apps/v1 Deployment":
			v = &appsv1.Deployment{}
		case "policy/v1 PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			v = &autoscalingv2.HorizontalPodAutoscaler{}
		case "networking.k8s.io/v1 NetworkPolicy":
			v = &networkingv1.NetworkPolicy{}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			v = &serviceMonitor{}
		case "cert-manager.io/v1 Certificate":
			v = &certificate{}
		case "security.istio.io/v1 AuthorizationPolicy":
			var env istioEnvelope
			if err := decodeStrict(j, &env); err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			spec, err := decodeIstioSpec(env.Spec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			m.objects = append(m.objects, object{src, head.APIVersion, head.Kind, env.ObjectMeta, &authorizationPolicy{env.ObjectMeta, spec}})
			continue
		default:
			return nil, fmt.Errorf("%s: unexpected %s %s", src, head.APIVersion, head.Kind)
		}
		if err := decodeStrict(j, v); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		meta, err := objectMeta(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		m.objects = append(m.objects, object{src, head.APIVersion, head.Kind, meta, v})
	}
	return m, nil
}

func objectMeta(v any) (metav1.ObjectMeta, error) {
	if o, ok := v.(metav1.Object); ok {
		return metav1.ObjectMeta{Name: o.GetName(), Namespace: o.GetNamespace(), Labels: o.GetLabels(), Annotations: o.GetAnnotations()}, nil
	}
	return metav1.ObjectMeta{}, fmt.Errorf("%T has no object metadata", v)
}

// render renders the chart with args and decodes it; any failure ends the test.
func render(t testing.TB, args ...string) *manifest {
	t.Helper()
	out, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest(out)
	if err != nil {
		t.Fatalf("helm template %s: %v", strings.Join(args, " "), err)
	}
	return m
}

// all returns the rendered objects of type T.
func all[T any](m *manifest) []*T {
	var out []*T
	for _, o := range m.objects {
		if v, ok := o.value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// only returns the one rendered object of type T.
func only[T any](t testing.TB, m *manifest) *T {
	t.Helper()
	objs := all[T](m)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T rendered, want 1", len(objs), &zero)
	}
	return objs[0]
}

// named returns the rendered object of type T called name, or nil.
func named[T any](m *manifest, name string) *T {
	for _, o := range m.objects {
		if v, ok := o.value.(*T); ok && o.meta.Name == name {
			return v
		}
	}
	return nil
}
