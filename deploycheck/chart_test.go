package deploycheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/userstore"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// requiredScenarios are the ci/ values files issue 6 asks for; any other
// ci/*-values.yaml is tested the same way.
var requiredScenarios = []string{"defaults", "hpa-pdb", "servicemonitor", "istio", "existing-secrets"}

// scenarios lists the ci/ values files by name ("defaults" for
// ci/defaults-values.yaml).
func scenarios(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), "-values.yaml"))
	}
	for _, want := range requiredScenarios {
		if !slices.Contains(names, want) {
			t.Errorf("%s/ci/%s-values.yaml is missing", chartDir, want)
		}
	}
	return names
}

// scenarioArgs are the extra helm arguments a scenario needs.
func scenarioArgs(name string) []string {
	args := ciValues(name)
	if name == "servicemonitor" {
		args = append(args, "--api-versions", serviceMonitorAPI)
	}
	return args
}

// existingSecrets stands in for the Secrets the ci/ scenarios reference
// without creating them (managed outside the chart).
var existingSecrets = map[string]map[string]string{
	"meet-application-jwt": {"APPLICATION_JWT_SECRET_KEY": "existing-jwt-key-0123456789abcdef"},
	"meet-addons":          {"ADDONS_TOKEN_SECRET_KEY": "existing-add-on-key-0123456789abcdef"},
	"gatehouse-jwt":        {"jwt-secret": "existing-jwt-key-0123456789abcdef"},
	"meet-db-gatehouse":    {"password": "existing-meet-db-password"},
	"meet-oidc":            {"OIDC_RS_CLIENT_SECRET": "existing-oidc-client-secret"},
	"gatehouse-redis": {
		"password":          "existing-redis-password",
		"sentinel-password": "existing-sentinel-password",
		"url":               "redis://:pw@redis.redis:6379/0",
	},
	// "redis-tls" (ca.crt, tls.crt, tls.key), "oidc-provider" (ca.crt) and
	// "meet-oidc-keys" (OIDC_RS_PRIVATE_KEY_STR) are generated: gatehouse
	// parses the PEM files when it validates its configuration.
}

var redisTLS = sync.OnceValues(newTestPKI)

// newTestPKI returns a CA certificate and a client certificate and key it
// signed, PEM-encoded, standing for a cert-manager Secret.
func newTestPKI() (map[string]string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "deploycheck CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "gatehouse"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	return map[string]string{
		"ca.crt":  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		"tls.crt": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		"tls.key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}, nil
}

func TestHelmLint(t *testing.T) {
	t.Parallel()
	for _, name := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// helm lint has no --api-versions: the ServiceMonitor itself is
			// linted by TestChartServiceMonitor's strict decode.
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, ciValues(name)...)
			out, err := runHelm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint: %s", out)
			}
			// Helm logs a template's fail() as [INFO] in lint mode and
			// carries on: treat it as the failure it is.
			if strings.Contains(out, "Fail:") || strings.Contains(out, "[ERROR]") || strings.Contains(out, "[WARNING]") {
				t.Fatalf("helm lint: %s", out)
			}
		})
	}
}

// TestChartScenarios renders every ci/ scenario, decodes every document
// strictly, and checks the invariants that hold in all of them.
func TestChartScenarios(t *testing.T) {
	t.Parallel()
	for _, name := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := render(t, scenarioArgs(name)...)
			checkCommon(t, m)
			checkDeployment(t, m)
			checkServices(t, m)
			checkNetworkPolicy(t, m)
			checkSecretRefs(t, m)
			checkNoPlainSecrets(t, m)
			pod := materialize(t, m)
			checkGatehouseConfig(t, m, pod)
		})
	}
}

// checkCommon: every object is labelled, in the release namespace (Istio
// policies go where the protected workloads are), and the kinds are the
// expected ones.
func checkCommon(t *testing.T, m *manifest) {
	t.Helper()
	if len(m.objects) == 0 {
		t.Fatal("nothing rendered")
	}
	seen := map[string]bool{}
	for _, o := range m.objects {
		key := o.kind + "/" + o.meta.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if o.meta.Labels["app.kubernetes.io/name"] != "gatehouse" || o.meta.Labels["app.kubernetes.io/instance"] != release {
			t.Errorf("%s: labels %v lack app.kubernetes.io/name and instance", key, o.meta.Labels)
		}
		if o.kind != "AuthorizationPolicy" && o.kind != "ServiceMonitor" && o.meta.Namespace != namespace {
			t.Errorf("%s: namespace %q, want the release's %q", key, o.meta.Namespace, namespace)
		}
		if o.meta.Namespace == "" {
			t.Errorf("%s: no namespace", key)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap"} {
		found := false
		for _, o := range m.objects {
			found = found || o.kind == kind
		}
		if !found {
			t.Errorf("no %s rendered", kind)
		}
	}
}

// container returns the gatehouse container of the Deployment.
func container(t testing.TB, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "gatehouse" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no gatehouse container", d.Name)
	return nil
}

func containerPort(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func selects(t testing.TB, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("label selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(lbls))
}

// checkDeployment: security settings, gRPC probes, resources, spreading.
func checkDeployment(t *testing.T, m *manifest) {
	t.Helper()
	d := only[appsv1.Deployment](t, m)
	pod := d.Spec.Template.Spec
	c := container(t, d)

	if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector, d.Spec.Template.Labels)
	}

	// Security.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatalf("no pod or container securityContext")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("runAsNonRoot is not true on the pod and the container")
	}
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 || sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("runAsUser 0")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("privileged container")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v: want drop [ALL] and nothing added", sc.Capabilities)
	}
	for what, p := range map[string]*corev1.SeccompProfile{"pod": psc.SeccompProfile, "container": sc.SeccompProfile} {
		if p == nil || p.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s seccompProfile %+v: want RuntimeDefault", what, p)
		}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken is not false: gatehouse never calls the API server")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("host namespaces shared")
	}

	// Ports and probes.
	grpcPort := containerPort(c, "grpc")
	for _, name := range []string{"grpc", "http", "metrics"} {
		if containerPort(c, name) == 0 {
			t.Errorf("container port %q missing", name)
		}
	}
	probes := map[string]struct {
		p       *corev1.Probe
		service string
		path    string
	}{
		"startup":   {c.StartupProbe, "", "/healthz"},
		"liveness":  {c.LivenessProbe, "", "/healthz"},
		"readiness": {c.ReadinessProbe, authorizationService, "/readyz"},
	}
	tlsOn := slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == "tls" })
	for name, want := range probes {
		p := want.p
		switch {
		case p == nil:
			t.Errorf("no %s probe", name)
		case tlsOn:
			// The kubelet's gRPC probe speaks plaintext only: with TLS on
			// the grpc port, the probes ask the plain metrics port.
			if p.HTTPGet == nil || p.GRPC != nil || p.HTTPGet.Port.StrVal != "metrics" ||
				p.HTTPGet.Path != want.path || p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
				t.Errorf("%s probe %+v with TLS on: want an HTTP GET of %s on the metrics port", name, p.ProbeHandler, want.path)
			}
		case p.GRPC == nil || p.HTTPGet != nil || p.TCPSocket != nil || p.Exec != nil:
			t.Errorf("%s probe %+v: want a native gRPC probe only", name, p.ProbeHandler)
		case p.GRPC.Port != grpcPort:
			t.Errorf("%s probe port %d, want the grpc port %d", name, p.GRPC.Port, grpcPort)
		case p.GRPC.Service == nil || *p.GRPC.Service != want.service:
			t.Errorf("%s probe service %s, want %q", name, fmtPtr(p.GRPC.Service), want.service)
		}
	}

	// Resources.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// Spreading.
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Errorf("no topologySpreadConstraints")
	}
	for _, tsc := range pod.TopologySpreadConstraints {
		if !selects(t, tsc.LabelSelector, d.Spec.Template.Labels) {
			t.Errorf("topology spread on %s does not select the pods", tsc.TopologyKey)
		}
	}

	// Config and checksums.
	for _, a := range []string{"checksum/config", "checksum/routes"} {
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(d.Spec.Template.Annotations[a]) {
			t.Errorf("pod template annotation %s = %q, want a sha256", a, d.Spec.Template.Annotations[a])
		}
	}
	if d.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
		t.Errorf("no terminationGracePeriodSeconds")
	}
	if img := c.Image; !regexp.MustCompile(`^[^:@]+(:[^@]+|@sha256:[0-9a-f]{64})$`).MatchString(img) {
		t.Errorf("image %q: want repository:tag or repository@sha256:digest", img)
	}
}

// checkServices: the main Service has ports grpc (appProtocol grpc), http and
// metrics; every targetPort names a container port; selectors select the pods.
func checkServices(t *testing.T, m *manifest) {
	t.Helper()
	d := only[appsv1.Deployment](t, m)
	c := container(t, d)
	main := mainService(t, m)
	var names []string
	for _, p := range main.Spec.Ports {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"grpc", "http", "metrics"}) {
		t.Errorf("Service ports %v, want grpc, http, metrics", names)
	}
	for _, svc := range all[corev1.Service](m) {
		if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, d.Spec.Template.Labels) {
			t.Errorf("Service %s does not select the pods", svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.Type != intstr.String || containerPort(c, p.TargetPort.StrVal) == 0 {
				t.Errorf("Service %s port %s: targetPort %v is not a named container port", svc.Name, p.Name, p.TargetPort.String())
			}
			if p.TargetPort.StrVal != p.Name {
				t.Errorf("Service %s port %s targets %s", svc.Name, p.Name, p.TargetPort.StrVal)
			}
			want := "http"
			if p.Name == "grpc" {
				want = "grpc" // Istio treats the port as gRPC (HTTP/2) only with it
			}
			if p.AppProtocol == nil || *p.AppProtocol != want {
				t.Errorf("Service %s port %s: appProtocol %s, want %s", svc.Name, p.Name, fmtPtr(p.AppProtocol), want)
			}
			if p.Port != containerPort(c, p.Name) {
				t.Errorf("Service %s port %s is %d, the container's %d", svc.Name, p.Name, p.Port, containerPort(c, p.Name))
			}
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			for _, p := range svc.Spec.Ports {
				if p.Name == "metrics" {
					t.Errorf("headless Service %s exposes metrics: a ServiceMonitor would scrape every pod twice", svc.Name)
				}
			}
		}
	}
	for _, sm := range all[serviceMonitor](m) {
		if !selects(t, &sm.Spec.Selector, main.Labels) {
			t.Errorf("ServiceMonitor does not select the Service %s", main.Name)
		}
	}
}

// mainService returns the chart's ClusterIP Service (the other one is headless).
func mainService(t testing.TB, m *manifest) *corev1.Service {
	t.Helper()
	var found []*corev1.Service
	for _, svc := range all[corev1.Service](m) {
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			found = append(found, svc)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d non-headless Services rendered, want 1", len(found))
	}
	return found[0]
}

// checkNetworkPolicy: ports by name exist in the container; DNS is open.
func checkNetworkPolicy(t *testing.T, m *manifest) {
	t.Helper()
	nps := all[networkingv1.NetworkPolicy](m)
	if len(nps) == 0 {
		return
	}
	d := only[appsv1.Deployment](t, m)
	c := container(t, d)
	np := nps[0]
	if !selects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy does not select the pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v: want Ingress and Egress", np.Spec.PolicyTypes)
	}
	ingressPorts := map[string]bool{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.Type == intstr.Int && p.Port.IntValue() == istioHBONEPort {
				continue // Istio ambient's ztunnel, not a container port
			}
			if p.Port == nil || p.Port.Type != intstr.String || containerPort(c, p.Port.StrVal) == 0 {
				t.Errorf("ingress port %v is not a named container port", p.Port)
				continue
			}
			ingressPorts[p.Port.StrVal] = true
		}
	}
	for _, want := range []string{"grpc", "http", "metrics"} {
		if !ingressPorts[want] {
			t.Errorf("NetworkPolicy lets nothing in on %s", want)
		}
	}
	dns := map[corev1.Protocol]bool{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntValue() == 53 && p.Protocol != nil {
				dns[*p.Protocol] = true
			}
		}
	}
	if !dns[corev1.ProtocolUDP] || !dns[corev1.ProtocolTCP] {
		t.Errorf("NetworkPolicy egress does not open DNS (53 UDP and TCP): %v", dns)
	}
}

// secretData returns the data of a Secret the chart rendered, or of one a
// scenario references as existing; ok is false for neither.
func secretData(m *manifest, name string) (map[string][]byte, bool) {
	if s := named[corev1.Secret](m, name); s != nil {
		data := map[string][]byte{}
		for k, v := range s.Data {
			data[k] = v
		}
		for k, v := range s.StringData {
			data[k] = []byte(v)
		}
		return data, true
	}
	ex, ok := existingSecrets[name]
	// The listeners' Secret (ci/tls) holds the same kind of PEM files.
	if name == "redis-tls" || name == "gatehouse-tls" {
		pki, err := redisTLS()
		if err != nil {
			panic(err)
		}
		ex, ok = pki, true
	}
	// The identity provider's CA, and the key it encrypts answers to.
	if name == "oidc-provider" || name == "meet-oidc-keys" {
		pki, err := redisTLS()
		if err != nil {
			panic(err)
		}
		ex, ok = map[string]string{"ca.crt": pki["ca.crt"]}, true
		if name == "meet-oidc-keys" {
			ex = map[string]string{"OIDC_RS_PRIVATE_KEY_STR": pki["tls.key"]}
		}
	}
	if ok {
		data := map[string][]byte{}
		for k, v := range ex {
			data[k] = []byte(v)
		}
		return data, true
	}
	return nil, false
}

// checkSecretRefs: every Secret key the pod reads exists, either in a Secret
// the chart renders or in one the scenario declares as existing; a chart
// Secret is only rendered when something reads it.
func checkSecretRefs(t *testing.T, m *manifest) {
	t.Helper()
	d := only[appsv1.Deployment](t, m)
	c := container(t, d)
	used := map[string]bool{}
	usedKey := map[[2]string]bool{}
	check := func(what, name, key string) {
		used[name] = true
		usedKey[[2]string{name, key}] = true
		data, ok := secretData(m, name)
		if !ok {
			t.Errorf("%s: Secret %q is neither rendered nor declared as existing by the scenario", what, name)
			return
		}
		if _, ok := data[key]; !ok {
			t.Errorf("%s: Secret %q has no key %q", what, name, key)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			check("env "+e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		var srcs []*corev1.SecretProjection
		var mode *int32
		switch {
		case v.Secret != nil:
			srcs = append(srcs, &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: v.Secret.SecretName}, Items: v.Secret.Items})
			mode = v.Secret.DefaultMode
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret == nil {
					t.Errorf("volume %s projects something else than Secrets", v.Name)
					continue
				}
				srcs = append(srcs, src.Secret)
			}
			mode = v.Projected.DefaultMode
		default:
			continue
		}
		for _, src := range srcs {
			if len(src.Items) == 0 {
				t.Errorf("volume %s mounts every key of Secret %s: mount only the keys gatehouse reads", v.Name, src.Name)
			}
			for _, it := range src.Items {
				check("volume "+v.Name, src.Name, it.Key)
			}
		}
		if mode == nil || *mode&0o007 != 0 {
			t.Errorf("volume %s: Secret files readable by others (defaultMode %s)", v.Name, fmtMode(mode))
		}
	}
	for _, s := range all[corev1.Secret](m) {
		if !used[s.Name] {
			t.Errorf("Secret %s is rendered but nothing reads it", s.Name)
		}
		data, _ := secretData(m, s.Name)
		for k := range data {
			if !usedKey[[2]string{s.Name, k}] {
				t.Errorf("Secret %s holds %q, which nothing reads", s.Name, k)
			}
		}
	}
	if !used[d.Spec.Template.Spec.Volumes[0].Secret.SecretName] {
		t.Errorf("the JWT key volume is not the first volume or reads no Secret")
	}
}

func fmtPtr(s *string) string {
	if s == nil {
		return "unset"
	}
	return strconv.Quote(*s)
}

func fmtMode(m *int32) string {
	if m == nil {
		return "unset"
	}
	return fmt.Sprintf("%#o", *m)
}

// checkNoPlainSecrets: no secret value (of a Secret the chart renders or of
// an existing one) appears in a ConfigMap, an env value, or a pod annotation.
func checkNoPlainSecrets(t *testing.T, m *manifest) {
	t.Helper()
	var secrets []string
	for _, s := range all[corev1.Secret](m) {
		for k, v := range s.Data {
			if k != "users.yaml" { // a users file is personal data, not a credential
				secrets = append(secrets, string(v))
			}
		}
	}
	for _, data := range existingSecrets {
		for _, v := range data {
			secrets = append(secrets, v)
		}
	}
	var plain []string
	for _, cm := range all[corev1.ConfigMap](m) {
		for _, v := range cm.Data {
			plain = append(plain, v)
		}
	}
	d := only[appsv1.Deployment](t, m)
	for _, e := range container(t, d).Env {
		plain = append(plain, e.Value)
	}
	for _, v := range d.Spec.Template.Annotations {
		plain = append(plain, v)
	}
	for _, secret := range secrets {
		for _, p := range plain {
			if secret != "" && strings.Contains(p, secret) {
				t.Errorf("a secret value is in plain text: %q", p)
			}
		}
	}
}

// podFiles is the container's view of the rendered chart: its environment
// and its mounted files, written under root.
type podFiles struct {
	env  map[string]string
	root string
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// materialize builds the environment the kubelet would give the gatehouse
// container (envFrom, then env with $(VAR) references expanded) and writes
// the files of its Secret and ConfigMap volumes under a temporary root;
// environment values naming a mounted file are rewritten to point there.
func materialize(t *testing.T, m *manifest) podFiles {
	t.Helper()
	d := only[appsv1.Deployment](t, m)
	c := container(t, d)
	pf := podFiles{env: map[string]string{}, root: t.TempDir()}
	configMap := func(name string) map[string]string {
		cm := named[corev1.ConfigMap](m, name)
		if cm == nil {
			t.Fatalf("ConfigMap %q is not rendered", name)
		}
		return cm.Data
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			for k, v := range configMap(ef.ConfigMapRef.Name) {
				pf.env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			data, ok := secretData(m, ef.SecretRef.Name)
			if !ok {
				t.Fatalf("envFrom Secret %q unknown", ef.SecretRef.Name)
			}
			for k, v := range data {
				pf.env[ef.Prefix+k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			pf.env[e.Name] = k8sVarRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				name := k8sVarRef.FindStringSubmatch(ref)[1]
				if v, ok := pf.env[name]; ok {
					return v
				}
				return ref // Kubernetes leaves unknown references as they are
			})
		case e.ValueFrom.SecretKeyRef != nil:
			data, _ := secretData(m, e.ValueFrom.SecretKeyRef.Name)
			pf.env[e.Name] = string(data[e.ValueFrom.SecretKeyRef.Key])
		case e.ValueFrom.ConfigMapKeyRef != nil:
			pf.env[e.Name] = configMap(e.ValueFrom.ConfigMapKeyRef.Name)[e.ValueFrom.ConfigMapKeyRef.Key]
		case e.ValueFrom.ResourceFieldRef != nil:
			// The downward API: the container's resource over the divisor,
			// rounded up, as the kubelet computes it.
			ref := e.ValueFrom.ResourceFieldRef
			if ref.ContainerName != c.Name {
				t.Errorf("env %s reads the resources of container %q, not %q", e.Name, ref.ContainerName, c.Name)
			}
			q, ok := c.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))]
			if !strings.HasPrefix(ref.Resource, "limits.") || !ok {
				t.Errorf("env %s reads %s, which the container does not set", e.Name, ref.Resource)
			}
			div := ref.Divisor.Value()
			if div == 0 {
				div = 1
			}
			pf.env[e.Name] = strconv.FormatInt((q.Value()+div-1)/div, 10)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly {
			t.Errorf("volume %s is mounted read-write", vm.Name)
		}
		v, ok := volumes[vm.Name]
		if !ok {
			t.Fatalf("volumeMount %s has no volume", vm.Name)
		}
		type source struct {
			data  map[string][]byte
			items []corev1.KeyToPath
		}
		var sources []source
		secret := func(name string) map[string][]byte {
			data, ok := secretData(m, name)
			if !ok {
				t.Fatalf("volume %s: Secret %q unknown", v.Name, name)
			}
			return data
		}
		switch {
		case v.Secret != nil:
			sources = append(sources, source{secret(v.Secret.SecretName), v.Secret.Items})
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret == nil {
					t.Fatalf("volume %s: only Secret projections are emulated", v.Name)
				}
				sources = append(sources, source{secret(src.Secret.Name), src.Secret.Items})
			}
		case v.ConfigMap != nil:
			data := map[string][]byte{}
			for k, s := range configMap(v.ConfigMap.Name) {
				data[k] = []byte(s)
			}
			sources = append(sources, source{data, v.ConfigMap.Items})
		default:
			t.Fatalf("volume %s: only Secret, projected Secret and ConfigMap volumes are emulated", v.Name)
		}
		dir := filepath.Join(pf.root, filepath.FromSlash(vm.MountPath))
		for _, src := range sources {
			items := src.items
			if len(items) == 0 {
				for k := range src.data {
					items = append(items, corev1.KeyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				b, ok := src.data[it.Key]
				if !ok {
					t.Fatalf("volume %s: key %q missing", v.Name, it.Key)
				}
				p := filepath.Join(dir, filepath.FromSlash(it.Path))
				if _, err := os.Stat(p); err == nil {
					t.Fatalf("volume %s: two sources write %s", v.Name, it.Path)
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		mounts = append(mounts, vm.MountPath)
	}
	for k, v := range pf.env {
		for _, mp := range mounts {
			if strings.HasPrefix(v, mp+"/") {
				pf.env[k] = filepath.Join(pf.root, filepath.FromSlash(v))
			}
		}
	}
	return pf
}

// parseConfig runs gatehouse's own configuration parser and validation on
// the container's environment, as "gatehouse serve" would at start.
func parseConfig(t *testing.T, pf podFiles) config.Config {
	t.Helper()
	cfg, err := config.Parse(nil, func(k string) (string, bool) { v, ok := pf.env[k]; return v, ok }, io.Discard)
	if err != nil {
		t.Fatalf("gatehouse rejects the chart's environment: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("gatehouse rejects the chart's configuration: %v", err)
	}
	return cfg
}

func addrPort(t *testing.T, env, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, addr, err)
	}
	return int32(n)
}

// checkGatehouseConfig: the rendered environment and files are a valid
// gatehouse configuration whose listeners are the container ports, whose
// graceful stop fits in terminationGracePeriodSeconds, and whose routes and
// users files load.
func checkGatehouseConfig(t *testing.T, m *manifest, pf podFiles) {
	t.Helper()
	d := only[appsv1.Deployment](t, m)
	c := container(t, d)
	cfg := parseConfig(t, pf)

	if got, want := addrPort(t, "GATEHOUSE_GRPC_ADDR", cfg.GRPCAddr), containerPort(c, "grpc"); got != want {
		t.Errorf("gRPC listens on %d, the grpc container port is %d", got, want)
	}
	if got, want := addrPort(t, "GATEHOUSE_OPS_ADDR", cfg.OpsAddr), containerPort(c, "metrics"); got != want {
		t.Errorf("ops listens on %d, the metrics container port is %d", got, want)
	}
	if got, want := addrPort(t, "GATEHOUSE_HTTP_ADDR", pf.env["GATEHOUSE_HTTP_ADDR"]), containerPort(c, "http"); got != want {
		t.Errorf("HTTP forward-auth listens on %d, the http container port is %d", got, want)
	}

	// The kubelet must not kill a pod that is still draining: the preStop
	// sleep, the drain and the graceful stop must end before the grace
	// period does.
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Exec != nil {
			t.Errorf("preStop hook %+v: only a sleep action works in an image without a shell", c.Lifecycle.PreStop)
		} else {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if grace <= preStop+cfg.DrainPeriod+cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %s <= preStop sleep %s + GATEHOUSE_DRAIN_PERIOD %s + GATEHOUSE_SHUTDOWN_TIMEOUT %s",
			grace, preStop, cfg.DrainPeriod, cfg.ShutdownTimeout)
	}
	// The listeners' certificate, key and client CAs load as gatehouse
	// loads them at start.
	if cfg.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			t.Errorf("GATEHOUSE_TLS_CERT_FILE and _KEY_FILE: %v", err)
		}
		if cfg.TLSClientCAFile != "" {
			if pem, err := os.ReadFile(cfg.TLSClientCAFile); err != nil || !x509.NewCertPool().AppendCertsFromPEM(pem) {
				t.Errorf("GATEHOUSE_TLS_CLIENT_CA_FILE holds no CA certificate (%v)", err)
			}
		}
	}

	secret, err := cfg.Secret()
	if err != nil || len(secret) == 0 {
		t.Errorf("JWT key: %v", err)
	}
	if spec, ok := pf.env["GATEHOUSE_ROUTES"]; ok {
		if _, err := routes.Resolve(spec); err != nil {
			t.Errorf("GATEHOUSE_ROUTES=%q: %v", spec, err)
		}
	}
	if cfg.UsersFile != "" {
		if _, err := userstore.LoadFile(cfg.UsersFile); err != nil {
			t.Errorf("users file: %v", err)
		}
	}
	if !cfg.UsesRedis() && cfg.UsersFile == "" && cfg.DirectoryOrigin == "" {
		t.Errorf("no user directory configured")
	}
	// A directory origin's password and CA reach gatehouse as files.
	if sc, err := cfg.ServerConfig(); err != nil {
		t.Errorf("server configuration: %v", err)
	} else if cfg.DirectoryOriginPasswordFile != "" && sc.DirectoryOriginPassword == "" {
		t.Errorf("GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE gives no password")
	}
	if f := cfg.DirectoryOriginCAFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("GATEHOUSE_DIRECTORY_ORIGIN_CA_FILE: %v", err)
		}
	}
	// OIDC access tokens: the client secret, the decryption key and the
	// provider's CA are read from their files, and the introspector
	// accepts the whole (algorithms, key type, CA bundle) as at start.
	if sc, err := cfg.ServerConfig(); err == nil && sc.OIDC.IntrospectionURL != "" {
		if sc.OIDC.ClientSecret == "" {
			t.Errorf("OIDC access tokens without a client secret")
		}
		if cfg.OIDCEncryptionKeyFile != "" && sc.OIDC.EncryptionKey == nil {
			t.Errorf("GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE gives no key")
		}
		if _, err := oidc.New(sc.OIDC); err != nil {
			t.Errorf("OIDC access tokens: %v", err)
		}
	}
}

// TestChartDefaults checks what the defaults scenario must render.
func TestChartDefaults(t *testing.T) {
	t.Parallel()
	m := render(t, ciValues("defaults")...)
	d := only[appsv1.Deployment](t, m)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pdb := only[policyv1.PodDisruptionBudget](t, m)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB %+v: want maxUnavailable 1", pdb.Spec)
	}
	if !selects(t, pdb.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("PDB does not select the pods")
	}
	if len(all[autoscalingv2.HorizontalPodAutoscaler](m)) != 0 {
		t.Errorf("HPA rendered by default")
	}
	if len(all[serviceMonitor](m)) != 0 || len(all[authorizationPolicy](m)) != 0 {
		t.Errorf("ServiceMonitor or AuthorizationPolicy rendered by default")
	}
	if len(all[networkingv1.NetworkPolicy](m)) != 1 {
		t.Errorf("no NetworkPolicy by default")
	}
	pf := materialize(t, m)
	cfg := parseConfig(t, pf)
	if cfg.RedisURL != "redis://redis-master.redis.svc.cluster.local:6379/0" {
		t.Errorf("GATEHOUSE_REDIS_URL = %q", cfg.RedisURL)
	}
	if pf.env["GATEHOUSE_ROUTES"] != routes.MeetTableName {
		t.Errorf("GATEHOUSE_ROUTES = %q, want the built-in %q", pf.env["GATEHOUSE_ROUTES"], routes.MeetTableName)
	}
	if cfg.ShutdownTimeout != 15*time.Second || cfg.DrainPeriod != 10*time.Second || *d.Spec.Template.Spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("shutdown %s, drain %s, grace %ds: want 15s, 10s and 30s (10s drain + 15s + 5s)",
			cfg.ShutdownTimeout, cfg.DrainPeriod, *d.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	if c := container(t, d); c.Lifecycle != nil {
		t.Errorf("lifecycle %+v by default: gatehouse drains by itself, a preStop sleep would only delay NOT_SERVING", c.Lifecycle)
	}
	// GOMEMLIMIT is the memory limit (256Mi by default), in bytes, which
	// the Go runtime reads as a plain byte count.
	if got := pf.env["GOMEMLIMIT"]; got != "268435456" {
		t.Errorf("GOMEMLIMIT = %q, want the 256Mi memory limit in bytes", got)
	}
	// The JWT key is read from a file, never from an environment variable.
	if _, ok := pf.env["GATEHOUSE_JWT_SECRET"]; ok {
		t.Errorf("GATEHOUSE_JWT_SECRET is set: the key belongs in a mounted file")
	}
	if string(must(cfg.Secret())) != "ci-only-not-a-real-secret-0123456789abcdef" {
		t.Errorf("the JWT key read through GATEHOUSE_JWT_SECRET_FILE is not jwt.secret")
	}
	// Egress: DNS and Redis only.
	np := only[networkingv1.NetworkPolicy](t, m)
	var ports []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", p.Port.String(), *p.Protocol))
		}
	}
	sort.Strings(ports)
	if !slices.Equal(ports, []string{"53/TCP", "53/UDP", "6379/TCP"}) {
		t.Errorf("egress ports %v, want DNS and Redis only", ports)
	}
	// Metrics only from the monitoring namespace.
	for _, r := range np.Spec.Ingress {
		if r.Ports[0].Port.StrVal == "metrics" {
			if len(r.From) != 1 || r.From[0].NamespaceSelector == nil || !selects(t, r.From[0].NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": "monitoring"}) ||
				selects(t, r.From[0].NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": "default"}) {
				t.Errorf("metrics ingress from %+v: want the monitoring namespace only", r.From)
			}
		}
	}
}

// redisClientConfig returns the Redis client settings gatehouse derives
// from cfg, reading its password files.
func redisClientConfig(t *testing.T, cfg config.Config) redisstore.ClientConfig {
	t.Helper()
	cc, err := cfg.RedisClientConfig()
	if err != nil {
		t.Fatalf("Redis settings: %v", err)
	}
	return cc
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestChartPDBAndHPA checks when a PodDisruptionBudget exists and that the
// HPA takes the replica count over.
func TestChartPDBAndHPA(t *testing.T) {
	t.Parallel()
	t.Run("hpa-pdb", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("hpa-pdb")...)
		d := only[appsv1.Deployment](t, m)
		if d.Spec.Replicas != nil {
			t.Errorf("replicas %d set although the HPA owns it", *d.Spec.Replicas)
		}
		hpa := only[autoscalingv2.HorizontalPodAutoscaler](t, m)
		if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name || hpa.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
			t.Errorf("HPA targets %+v", hpa.Spec.ScaleTargetRef)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 3 || hpa.Spec.MaxReplicas != 12 || len(hpa.Spec.Metrics) != 2 {
			t.Errorf("HPA spec %+v", hpa.Spec)
		}
		pdb := only[policyv1.PodDisruptionBudget](t, m)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
			t.Errorf("PDB %+v: want minAvailable 2 only", pdb.Spec)
		}
		// redis.password reaches gatehouse as it is, through a file.
		cc := redisClientConfig(t, parseConfig(t, materialize(t, m)))
		if cc.Password != "p@ss word/with:reserved?chars#%" || cc.URL != "redis://redis-master.redis.svc.cluster.local:6379/0" {
			t.Errorf("Redis URL %q and password %q: want the URL and password of the values", cc.URL, cc.Password)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		pdb  bool
	}{
		"one replica":                 {ciValues("single-replica"), false},
		"two replicas":                {append(ciValues("defaults"), "--set", "replicaCount=2"), true},
		"pdb disabled":                {append(ciValues("defaults"), "--set", "podDisruptionBudget.enabled=false"), false},
		"hpa with minReplicas 1":      {append(ciValues("defaults"), "--set", "replicaCount=5,autoscaling.enabled=true,autoscaling.minReplicas=1"), false},
		"hpa with 1 replica, min 2":   {append(ciValues("defaults"), "--set", "replicaCount=1,autoscaling.enabled=true,autoscaling.minReplicas=2"), true},
		"zero replicas (scaled down)": {append(ciValues("defaults"), "--set", "replicaCount=0"), false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := render(t, tc.args...)
			if got := len(all[policyv1.PodDisruptionBudget](m)); got != map[bool]int{true: 1, false: 0}[tc.pdb] {
				t.Errorf("%d PodDisruptionBudgets, want pdb=%v", got, tc.pdb)
			}
		})
	}
}

// TestChartServiceMonitor: only with the Prometheus Operator's API and
// enabled; it scrapes /metrics on the metrics port.
func TestChartServiceMonitor(t *testing.T) {
	t.Parallel()
	m := render(t, scenarioArgs("servicemonitor")...)
	sm := only[serviceMonitor](t, m)
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != "metrics" || ep.Path != "/metrics" || ep.Interval != "15s" || ep.ScrapeTimeout != "5s" {
		t.Errorf("ServiceMonitor endpoint %+v: want port metrics, path /metrics, 15s/5s", ep)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) || sm.Namespace != namespace {
		t.Errorf("ServiceMonitor namespaceSelector %+v in %s", sm.Spec.NamespaceSelector, sm.Namespace)
	}
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v lack metrics.serviceMonitor.labels", sm.Labels)
	}
	svc := named[corev1.Service](m, release)
	if containerPort(container(t, only[appsv1.Deployment](t, m)), "metrics") != 8081 || svc.Spec.Ports[2].Name != "metrics" || svc.Spec.Ports[2].Port != 8081 {
		t.Errorf("the metrics port is not 8081")
	}

	// Enabled without the API: nothing (a ServiceMonitor would fail the install).
	m = render(t, ciValues("servicemonitor")...)
	if n := len(all[serviceMonitor](m)); n != 0 {
		t.Errorf("%d ServiceMonitors rendered without the %s API", n, serviceMonitorAPI)
	}
	// The API without enabling it: nothing either.
	m = render(t, append(ciValues("defaults"), "--api-versions", serviceMonitorAPI)...)
	if n := len(all[serviceMonitor](m)); n != 0 {
		t.Errorf("%d ServiceMonitors rendered while disabled", n)
	}
}

// TestChartIstio: the CUSTOM AuthorizationPolicy decodes into istio.io/api's
// type and uses the provider NOTES.txt describes.
func TestChartIstio(t *testing.T) {
	t.Parallel()
	m := render(t, ciValues("istio")...)
	ap := only[authorizationPolicy](t, m)
	if ap.Namespace != "meet" {
		t.Errorf("AuthorizationPolicy in %q, want istio.authorizationPolicy.namespace meet", ap.Namespace)
	}
	spec := ap.Spec
	if spec.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
		t.Errorf("action %v, want CUSTOM", spec.GetAction())
	}
	if spec.GetProvider().GetName() != "gatehouse" {
		t.Errorf("provider %q, want gatehouse", spec.GetProvider().GetName())
	}
	if len(spec.GetSelector().GetMatchLabels()) == 0 {
		t.Errorf("no selector: the policy would apply to the whole namespace")
	}
	// Every request of the workload goes to gatehouse, and gatehouse's
	// routes answer the paths outside the external API with a public allow,
	// which removes client-sent identity headers.
	checkPolicyCoversEveryPath(t, "the istio scenario's AuthorizationPolicy", spec)
	set, err := routes.Resolve(materialize(t, m).env["GATEHOUSE_ROUTES"])
	if err != nil {
		t.Fatalf("the istio scenario's routes: %v", err)
	}
	checkAllPathsTable(t, "the istio scenario's routes", set)
	// The chart's default rules, with only what the template requires.
	def := only[authorizationPolicy](t, render(t, append(ciValues("defaults"),
		"--set", "istio.authorizationPolicy.enabled=true",
		"--set", "istio.authorizationPolicy.selector.matchLabels.app=meet")...))
	checkPolicyCoversEveryPath(t, "the chart's default AuthorizationPolicy rules", def.Spec)
	svc := named[corev1.Service](m, release)
	if svc.Spec.TrafficDistribution == nil || *svc.Spec.TrafficDistribution != "PreferClose" {
		t.Errorf("service.trafficDistribution not applied")
	}
}

// TestChartChecksums: a change of routes, settings or the chart's Secret
// changes the matching pod annotation (and so rolls the pods), and only it.
func TestChartChecksums(t *testing.T) {
	t.Parallel()
	annotations := func(args ...string) map[string]string {
		return only[appsv1.Deployment](t, render(t, append(ciValues("users-routes-file"), args...)...)).Spec.Template.Annotations
	}
	base := annotations()
	for name, tc := range map[string]struct {
		args    []string
		changed string
	}{
		"routes file": {valuesFile(t, "routes:\n  file: |\n    routes:\n      - path: /other\n        public: true\n"), "checksum/routes"},
		"log level":   {[]string{"--set", "log.level=debug"}, "checksum/config"},
		"config map":  {[]string{"--set-string", "config.GATEHOUSE_CACHE_SIZE=10"}, "checksum/config"},
		"jwt secret":  {[]string{"--set", "jwt.secret=another-ci-secret-0123456789abcdef"}, "checksum/secret"},
		"users file":  {valuesFile(t, "users:\n  file: |\n    - {id: 33333333-3333-4333-8333-333333333333, active: true}\n"), "checksum/secret"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := annotations(tc.args...)
			for _, a := range []string{"checksum/config", "checksum/routes", "checksum/secret"} {
				if base[a] == "" || got[a] == "" {
					t.Fatalf("annotation %s missing", a)
				}
				if changed := got[a] != base[a]; changed != (a == tc.changed) {
					t.Errorf("%s changed: %v, want %v", a, changed, a == tc.changed)
				}
			}
		})
	}
}

// TestChartSecrets: secrets come from existing Secrets or the chart's own,
// never both; the Redis password of an existing Secret is substituted by
// the kubelet into the URL.
func TestChartSecrets(t *testing.T) {
	t.Parallel()
	t.Run("existing-secrets", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("existing-secrets")...)
		if n := len(all[corev1.Secret](m)); n != 0 {
			t.Errorf("%d Secrets rendered although all are existing", n)
		}
		d := only[appsv1.Deployment](t, m)
		jwt := d.Spec.Template.Spec.Volumes[0].Secret
		if jwt.SecretName != "meet-application-jwt" || jwt.Items[0].Key != "APPLICATION_JWT_SECRET_KEY" {
			t.Errorf("JWT volume %+v: want the existing Secret and key", jwt)
		}
		if _, ok := d.Spec.Template.Annotations["checksum/secret"]; ok {
			t.Errorf("checksum/secret set without a chart Secret")
		}
		cc := redisClientConfig(t, parseConfig(t, materialize(t, m)))
		if cc.URL != "rediss://default@redis.redis.svc.cluster.local:6380/2" || cc.Password != existingSecrets["gatehouse-redis"]["password"] {
			t.Errorf("Redis URL %q, password %q: want the URL of the values and the password of the Secret", cc.URL, cc.Password)
		}
	})
	t.Run("existing-redis-url", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("existing-redis-url")...)
		if n := len(all[corev1.Secret](m)); n != 0 {
			t.Errorf("%d Secrets rendered although all are existing", n)
		}
		cfg := parseConfig(t, materialize(t, m))
		if cfg.RedisURL != existingSecrets["gatehouse-redis"]["url"] {
			t.Errorf("GATEHOUSE_REDIS_URL = %q", cfg.RedisURL)
		}
		np := only[networkingv1.NetworkPolicy](t, m)
		found := false
		for _, r := range np.Spec.Egress {
			if len(r.Ports) == 1 && r.Ports[0].Port.IntValue() == 6379 {
				found = len(r.To) == 1 && r.To[0].NamespaceSelector != nil
			}
		}
		if !found {
			t.Errorf("Redis egress is not limited to networkPolicy.egress.redisTo")
		}
	})
	t.Run("redis-sentinel-tls", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("redis-sentinel-tls")...)
		if n := len(all[corev1.Secret](m)); n != 0 {
			t.Errorf("%d Secrets rendered although all are existing", n)
		}
		cc := redisClientConfig(t, parseConfig(t, materialize(t, m)))
		if mode, err := cc.Mode(); err != nil || mode != redisstore.Sentinel {
			t.Errorf("Redis mode %v, %v: want Sentinel", mode, err)
		}
		if len(cc.SentinelAddrs) != 3 || cc.SentinelMaster != "mymaster" || cc.Username != "gatehouse" ||
			cc.Password != existingSecrets["gatehouse-redis"]["password"] || cc.SentinelPassword != existingSecrets["gatehouse-redis"]["sentinel-password"] {
			t.Errorf("Sentinel settings %+v", cc)
		}
		if cc.TLSCAFile == "" || cc.TLSCertFile == "" || cc.TLSKeyFile == "" || cc.TLSServerName != "redis.redis.svc.cluster.local" {
			t.Errorf("TLS settings: CA %q, cert %q, key %q, server name %q", cc.TLSCAFile, cc.TLSCertFile, cc.TLSKeyFile, cc.TLSServerName)
		}
		np := only[networkingv1.NetworkPolicy](t, m)
		sentinel := false
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				sentinel = sentinel || p.Port.IntValue() == 26379
			}
		}
		if !sentinel {
			t.Errorf("no egress to the sentinels' port 26379")
		}
	})
	t.Run("password in url", func(t *testing.T) {
		t.Parallel()
		m := render(t, append(ciValues("defaults"), "--set", "redis.url=redis://:in-url-password@redis:6379/0")...)
		checkNoPlainSecrets(t, m)
		d := only[appsv1.Deployment](t, m)
		found := false
		for _, e := range container(t, d).Env {
			found = found || e.Name == "GATEHOUSE_REDIS_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
		if !found {
			t.Errorf("a Redis URL with a password is not taken from a Secret")
		}
		if cfg := parseConfig(t, materialize(t, m)); cfg.RedisURL != "redis://:in-url-password@redis:6379/0" {
			t.Errorf("GATEHOUSE_REDIS_URL = %q", cfg.RedactedRedisURL())
		}
	})
	t.Run("redis-cluster", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("redis-cluster")...)
		cc := redisClientConfig(t, parseConfig(t, materialize(t, m)))
		if mode, err := cc.Mode(); err != nil || mode != redisstore.Cluster || len(cc.ClusterAddrs) != 2 || cc.Password != "ci-only-redis-password" {
			t.Errorf("Redis %+v (mode %v, %v): want Cluster with two nodes and the values' password", cc, mode, err)
		}
		for _, e := range container(t, only[appsv1.Deployment](t, m)).Env {
			if e.Name == "GATEHOUSE_REDIS_URL" {
				t.Errorf("GATEHOUSE_REDIS_URL set without redis.url")
			}
		}
	})
	t.Run("users-routes-file", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("users-routes-file")...)
		pf := materialize(t, m)
		cfg := parseConfig(t, pf)
		if cfg.RedisURL != "" || cfg.UsersFile == "" {
			t.Errorf("directory: redis %q, users file %q", cfg.RedisURL, cfg.UsersFile)
		}
		set, err := routes.Resolve(pf.env["GATEHOUSE_ROUTES"])
		if err != nil {
			t.Fatal(err)
		}
		if set.Default().Name() != "things" {
			t.Errorf("routes table %q, want the file's \"things\"", set.Default().Name())
		}
		np := only[networkingv1.NetworkPolicy](t, m)
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				if p.Port.IntValue() != 53 {
					t.Errorf("egress to port %s without Redis", p.Port.String())
				}
			}
		}
	})
}

// TestChartFull renders every first-class value at once: each reaches the
// container under its GATEHOUSE_* name and gatehouse accepts the result.
func TestChartFull(t *testing.T) {
	t.Parallel()
	m := render(t, ciValues("full")...)
	d := only[appsv1.Deployment](t, m)
	c := container(t, d)
	pf := materialize(t, m)
	want := map[string]string{
		"GATEHOUSE_GRPC_ADDR":            ":9443",
		"GATEHOUSE_HTTP_ADDR":            ":8443",
		"GATEHOUSE_OPS_ADDR":             ":9090",
		"GATEHOUSE_SHUTDOWN_TIMEOUT":     "30s",
		"GATEHOUSE_JWT_ALGORITHM":        "HS512",
		"GATEHOUSE_JWT_ISSUER":           "",
		"GATEHOUSE_JWT_AUDIENCE":         "meet-external-api",
		"GATEHOUSE_JWT_LEEWAY":           "2s",
		"GATEHOUSE_JWT_REQUIRE_EXP":      "true",
		"GATEHOUSE_REDIS_PREFIX":         "meet:",
		"GATEHOUSE_REDIS_TIMEOUT":        "100ms",
		"GATEHOUSE_CACHE_TTL":            "1m",
		"GATEHOUSE_CACHE_NEGATIVE_TTL":   "2s",
		"GATEHOUSE_CACHE_SIZE":           "5000000",
		"GATEHOUSE_CACHE_STALE_IF_ERROR": "5m",
		"GATEHOUSE_CHECK_APPLICATIONS":   "true",
		"GATEHOUSE_USER_ID_FORMAT":       "opaque",
		"GATEHOUSE_REALM":                "meet",
		"GATEHOUSE_HTTP_PATH_PREFIX":     "/auth",
		"GATEHOUSE_HEADER_USER_ID":       "X-Meet-User",
		"GATEHOUSE_HEADER_CLIENT_ID":     "x-meet-client",
		"GATEHOUSE_HEADER_SCOPE":         "x-meet-scope",
		"GATEHOUSE_LOG_LEVEL":            "debug",
		"GATEHOUSE_LOG_FORMAT":           "text",
		"GATEHOUSE_LOG_RATE":             "50",
		"GATEHOUSE_OTEL_ENDPOINT":        "otel-collector.observability:4317",
		"GATEHOUSE_OTEL_INSECURE":        "true",
		"GATEHOUSE_OTEL_SAMPLE_RATIO":    "0.25",
		"GATEHOUSE_REDIS_USERNAME":       "gatehouse",
		"GATEHOUSE_GRPC_REFLECTION":      "false",
		"GATEHOUSE_ROUTES":               "meet",
		"GOMEMLIMIT":                     "200MiB",

		"GATEHOUSE_OIDC_INTROSPECTION_URL":    "http://idp.identity:8080/introspect",
		"GATEHOUSE_OIDC_ISSUER":               "http://idp.identity:8080",
		"GATEHOUSE_OIDC_CLIENT_ID":            "meet-rs",
		"GATEHOUSE_OIDC_CLIENT_AUTH":          "client_secret_post",
		"GATEHOUSE_OIDC_REQUIRED_SCOPES":      "lasuite_meet meet",
		"GATEHOUSE_OIDC_AUDIENCE_CLAIM":       "azp",
		"GATEHOUSE_OIDC_TIMEOUT":              "2s",
		"GATEHOUSE_OIDC_JWKS_URL":             "https://idp.identity/jwks",
		"GATEHOUSE_OIDC_SIGNING_ALGORITHM":    "RS256",
		"GATEHOUSE_OIDC_ENCRYPTION_ALGORITHM": "RSA-OAEP-256",
		"GATEHOUSE_OIDC_ENCRYPTION_ENCODING":  "A128GCM",
		"GATEHOUSE_OIDC_CACHE_TTL":            "30s",
		"GATEHOUSE_OIDC_NEGATIVE_CACHE_TTL":   "0s",
	}
	// oidc.clientSecret, in the chart's Secret, reaches gatehouse as a file.
	if f := pf.env["GATEHOUSE_OIDC_CLIENT_SECRET_FILE"]; !strings.HasSuffix(filepath.ToSlash(f), "/etc/gatehouse/oidc/client-secret") {
		t.Errorf("GATEHOUSE_OIDC_CLIENT_SECRET_FILE = %q, want the mounted /etc/gatehouse/oidc/client-secret", f)
	}
	if sc := must(parseConfig(t, pf).ServerConfig()); sc.OIDC.ClientSecret != "ci-only-not-a-real-oidc-client-secret" {
		t.Errorf("the OIDC client secret read through GATEHOUSE_OIDC_CLIENT_SECRET_FILE is not oidc.clientSecret")
	}
	for k, v := range want {
		if got, ok := pf.env[k]; !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	cfg := parseConfig(t, pf)
	if cfg.JWTIssuer != "" || cfg.CacheSize != 5000000 || cfg.HeaderUserID != "x-meet-user" || cfg.ShutdownTimeout != 30*time.Second {
		t.Errorf("parsed config %v", cfg)
	}
	if *d.Spec.Template.Spec.TerminationGracePeriodSeconds != 45 || c.Lifecycle != nil {
		t.Errorf("grace %d and lifecycle %+v: want 45s (10s drain + 30s + 5s) and no preStop", *d.Spec.Template.Spec.TerminationGracePeriodSeconds, c.Lifecycle)
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if p.GRPC.Port != 9443 {
			t.Errorf("probe on port %d, want 9443", p.GRPC.Port)
		}
	}
	if c.Image != "registry.example.invalid/gatehouse@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("image %q: the digest must win", c.Image)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "authz-sa" || named[corev1.ServiceAccount](m, "authz-sa") == nil {
		t.Errorf("serviceAccount.name not applied")
	}
	np := only[networkingv1.NetworkPolicy](t, m)
	otel := false
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			otel = otel || p.Port.IntValue() == 4317
		}
	}
	if !otel {
		t.Errorf("no egress to the OTLP collector although otel.endpoint is set")
	}
}

// chartReserved are the settings the chart sets from its own values; the
// values schema refuses them in config. The inline secrets
// (GATEHOUSE_JWT_SECRET, GATEHOUSE_REDIS_PASSWORD, ...) are replaced by their
// _FILE variants: secrets are mounted, never put in the environment.
var chartReserved = map[string]string{
	"GATEHOUSE_GRPC_ADDR":                      "ports.grpc",
	"GATEHOUSE_HTTP_ADDR":                      "ports.http",
	"GATEHOUSE_OPS_ADDR":                       "ports.metrics",
	"GATEHOUSE_SHUTDOWN_TIMEOUT":               "shutdownTimeoutSeconds",
	"GATEHOUSE_DRAIN_PERIOD":                   "drainSeconds",
	"GATEHOUSE_TLS_CERT_FILE":                  "tls.existingSecret or tls.certManager",
	"GATEHOUSE_TLS_KEY_FILE":                   "tls.existingSecret or tls.certManager",
	"GATEHOUSE_TLS_CLIENT_CA_FILE":             "tls.clientAuth",
	"GATEHOUSE_JWT_SECRET":                     "jwt.secret (mounted as GATEHOUSE_JWT_SECRET_FILE)",
	"GATEHOUSE_JWT_SECRET_FILE":                "jwt.secret or jwt.existingSecret",
	"GATEHOUSE_ADDONS_JWT_SECRET":              "addons.secret (mounted as GATEHOUSE_ADDONS_JWT_SECRET_FILE)",
	"GATEHOUSE_ADDONS_JWT_SECRET_FILE":         "addons.secret or addons.existingSecret",
	"GATEHOUSE_REDIS_URL":                      "redis.url or redis.existingSecret.urlKey",
	"GATEHOUSE_REDIS_PASSWORD":                 "redis.password (mounted as GATEHOUSE_REDIS_PASSWORD_FILE)",
	"GATEHOUSE_REDIS_PASSWORD_FILE":            "redis.password or redis.existingSecret.passwordKey",
	"GATEHOUSE_REDIS_SENTINEL_ADDRS":           "redis.sentinel.addrs",
	"GATEHOUSE_REDIS_SENTINEL_PASSWORD":        "redis.sentinel.password (mounted as GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE)",
	"GATEHOUSE_REDIS_SENTINEL_PASSWORD_FILE":   "redis.sentinel.password or redis.existingSecret.sentinelPasswordKey",
	"GATEHOUSE_REDIS_CLUSTER_ADDRS":            "redis.clusterAddrs",
	"GATEHOUSE_REDIS_TLS_CA_FILE":              "redis.tls.existingSecret and caKey",
	"GATEHOUSE_REDIS_TLS_CERT_FILE":            "redis.tls.existingSecret and certKey",
	"GATEHOUSE_REDIS_TLS_KEY_FILE":             "redis.tls.existingSecret and keyKey",
	"GATEHOUSE_USERS_FILE":                     "users.file or users.existingSecret",
	"GATEHOUSE_ROUTES":                         "routes.builtin or routes.file",
	"GATEHOUSE_DIRECTORY_ORIGIN":               "directoryOrigin.url",
	"GATEHOUSE_DIRECTORY_ORIGIN_PASSWORD_FILE": "directoryOrigin.passwordSecret",
	"GATEHOUSE_DIRECTORY_ORIGIN_CA_FILE":       "directoryOrigin.caSecret",
	"GATEHOUSE_OIDC_CLIENT_SECRET":             "oidc.clientSecret (mounted as GATEHOUSE_OIDC_CLIENT_SECRET_FILE)",
	"GATEHOUSE_OIDC_CLIENT_SECRET_FILE":        "oidc.clientSecret or oidc.existingSecret",
	"GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE":       "oidc.encryptionKeySecret",
	"GATEHOUSE_OIDC_CA_FILE":                   "oidc.caSecret",
}

// TestChartReachesEverySetting: every setting gatehouse defines can be set
// from values — through config for the ordinary ones, with each setting's
// own default as the value, which gatehouse must accept back — and the chart
// sets no GATEHOUSE_* variable gatehouse does not know.
func TestChartReachesEverySetting(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("config:\n")
	known := map[string]bool{}
	var ordinary []config.Setting
	for _, s := range config.Settings() {
		known[s.Env] = true
		if _, ok := chartReserved[s.Env]; ok {
			continue
		}
		ordinary = append(ordinary, s)
		fmt.Fprintf(&b, "  %s: %s\n", s.Env, strconv.Quote(s.Default))
	}
	m := render(t, append(ciValues("defaults"), valuesFile(t, b.String())...)...)
	pf := materialize(t, m)
	for _, s := range ordinary {
		if got, ok := pf.env[s.Env]; !ok || got != s.Default {
			t.Errorf("config.%s: the container gets %q (set: %v), want %q", s.Env, got, ok, s.Default)
		}
	}
	parseConfig(t, pf)
	for env, value := range chartReserved {
		if !known[env] {
			t.Errorf("chartReserved lists %s (%s), which gatehouse does not define", env, value)
		}
	}
	// Every GATEHOUSE_* the chart can set, with every first-class value set,
	// and every reserved setting but the inline secrets set by a scenario.
	full := materialize(t, render(t, ciValues("full")...))
	setBy := map[string]bool{}
	for _, name := range scenarios(t) {
		for env := range materialize(t, render(t, scenarioArgs(name)...)).env {
			setBy[env] = true
		}
	}
	for env, value := range chartReserved {
		if !setBy[env] && !strings.Contains(value, "mounted as") {
			t.Errorf("no ci/ scenario sets %s (%s)", env, value)
		}
		if setBy[env] && strings.Contains(value, "mounted as") {
			t.Errorf("a ci/ scenario puts the secret %s in the environment", env)
		}
	}
	for _, scenario := range []podFiles{pf, full} {
		for env := range scenario.env {
			if strings.HasPrefix(env, "GATEHOUSE_") && !known[env] {
				t.Errorf("the chart sets %s, which gatehouse does not define (a typo?)", env)
			}
		}
	}
}

// refusal is a "helm template" that must fail: its arguments, and what the
// error must name.
type refusal struct {
	args []string
	want string
}

// checkRefusals runs each refusal as a parallel subtest.
func checkRefusals(t *testing.T, cases map[string]refusal) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := helmTemplate(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template %v failed without naming %q: %v", tc.args, tc.want, err)
			}
		})
	}
}

// TestChartRefusesMistakes: a misspelt or mistyped value, or a setup gatehouse
// would refuse at start, fails "helm template" with a message naming it.
func TestChartRefusesMistakes(t *testing.T) {
	t.Parallel()
	defaults := ciValues("defaults")
	checkRefusals(t, map[string]refusal{
		"typo at the top":        {append(defaults, "--set", "replicaCont=3"), "replicaCont"},
		"typo in jwt":            {append(defaults, "--set", "jwt.secrte=x"), "secrte"},
		"typo deep down":         {append(defaults, "--set", "networkPolicy.ingress.namspaces[0]=x"), "namspaces"},
		"typo in servicemonitor": {append(defaults, "--set", "metrics.serviceMonitor.enable=true"), "enable"},
		"typo in a file":         {append(defaults, valuesFile(t, "resources:\n  request:\n    cpu: 1\n")...), "request"},
		"wrong type":             {append(defaults, "--set-string", "replicaCount=two"), "replicaCount"},
		"bad duration":           {append(defaults, "--set", "cache.ttl=30 seconds"), "ttl"},
		"bad enum":               {append(defaults, "--set", "jwt.algorithm=RS256"), "algorithm"},
		"unknown meet profile":   {append(defaults, "--set", "meetProfile=2026.09"), "meetProfile"},
		"add-ons under 2025.10":  {append(defaults, "--set", "addons.secret=x"), `need meetProfile: "2026.08"`},
		"add-on key in config":   {append(defaults, "--set", "config.GATEHOUSE_ADDONS_JWT_SECRET=x"), "GATEHOUSE_ADDONS_JWT_SECRET"},
		"unknown routes table":   {append(defaults, "--set", "routes.builtin=met"), "builtin"},
		"config not GATEHOUSE_":  {append(defaults, "--set", "config.LOG_LEVEL=debug"), "LOG_LEVEL"},
		"config reserved":        {append(defaults, "--set", "config.GATEHOUSE_REDIS_URL=redis://x:6379"), "GATEHOUSE_REDIS_URL"},
		"config and first-class": {append(defaults, "--set", "log.level=debug,config.GATEHOUSE_LOG_LEVEL=info"), "GATEHOUSE_LOG_LEVEL is set twice"},
		"no jwt secret":          {[]string{"--set", "redis.url=redis://r:6379/0"}, "jwt.existingSecret"},
		"no directory":           {[]string{"--set", "jwt.secret=x"}, "no user directory"},
		"two directories":        {append(defaults, "--set", "users.existingSecret=users"), "not both"},
		"password twice":         {append(defaults, "--set", "redis.password=q,redis.existingSecret.name=s,redis.existingSecret.passwordKey=p"), "set one of redis.password"},
		"url twice":              {append(defaults, "--set", "redis.existingSecret.name=s,redis.existingSecret.urlKey=u"), "set one of redis.url"},
		"redis secret no key":    {append(defaults, "--set", "redis.existingSecret.name=r"), "urlKey"},
		"redis key no secret":    {append(defaults, "--set", "redis.existingSecret.passwordKey=p"), "existingSecret.name"},
		"password no address":    {[]string{"--set", "jwt.secret=x,redis.password=p"}, "no Redis address"},
		"sentinel no master":     {[]string{"--set", "jwt.secret=x,redis.sentinel.addrs[0]=s:26379"}, "sentinel.master"},
		"sentinel and cluster":   {[]string{"--set", "jwt.secret=x,redis.sentinel.addrs[0]=s:26379,redis.sentinel.master=m,redis.clusterAddrs[0]=c:6379"}, "clusterAddrs"},
		"sentinel bad address":   {[]string{"--set", "jwt.secret=x,redis.sentinel.addrs[0]=s,redis.sentinel.master=m"}, "addrs"},
		"tls cert without key":   {append(defaults, "--set", "redis.tls.existingSecret=t,redis.tls.caKey=ca.crt,redis.tls.certKey=tls.crt"), "keyKey"},
		"tls key without secret": {append(defaults, "--set", "redis.tls.caKey=ca.crt"), "redis.tls.existingSecret"},
		"bad sample ratio":       {append(defaults, "--set", "otel.sampleRatio=2"), "sampleRatio"},
		"policy without target":  {append(defaults, "--set", "istio.authorizationPolicy.enabled=true"), "selector"},
		"policy with no rules":   {append(defaults, valuesFile(t, "istio:\n  authorizationPolicy:\n    enabled: true\n    selector: {matchLabels: {app: x}}\n    rules: []\n")...), "rules"},
		"hpa min above max":      {append(defaults, "--set", "autoscaling.enabled=true,autoscaling.minReplicas=5,autoscaling.maxReplicas=2"), "minReplicas"},
		"users key extension":    {[]string{"--set", "jwt.secret=x,users.existingSecret=u,users.existingSecretKey=users"}, "existingSecretKey"},
		"origin and users":       {[]string{"--set", "jwt.secret=x,directoryOrigin.url=postgres://g@db/meet,users.existingSecret=u"}, "leave users empty"},
		"origin password in url": {[]string{"--set", "jwt.secret=x,directoryOrigin.url=postgres://g:pw@db/meet"}, "directoryOrigin.passwordSecret"},
		"origin password query":  {[]string{"--set", "jwt.secret=x,directoryOrigin.url=postgres://g@db/meet?password=pw"}, "directoryOrigin.passwordSecret"},
		"origin scheme":          {[]string{"--set", "jwt.secret=x,directoryOrigin.url=mysql://g@db/meet"}, "url"},
		"origin password grpc":   {[]string{"--set", "jwt.secret=x,directoryOrigin.url=grpc://d:1,directoryOrigin.passwordSecret.name=s"}, "postgres://"},
		"origin CA plaintext":    {[]string{"--set", "jwt.secret=x,directoryOrigin.url=grpc://d:1,directoryOrigin.caSecret.name=s"}, "grpcs://"},
	})
}

// TestChartKubeVersion: the chart refuses clusters without the features it
// uses (native gRPC probes, the preStop sleep action).
func TestChartKubeVersion(t *testing.T) {
	t.Parallel()
	args := []string{"template", release, chartDir, "--namespace", namespace, "-f", filepath.Join(chartDir, "ci", "defaults-values.yaml")}
	if _, err := runHelm(t, append(args, "--kube-version", minKubeVersion)...); err != nil {
		t.Errorf("Kubernetes %s: %v", minKubeVersion, err)
	}
	if _, err := runHelm(t, append(args, "--kube-version", "1.29.9")...); err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("Kubernetes 1.29.9 accepted: %v", err)
	}
}

// TestChartGoMemLimit: GOMEMLIMIT follows the container's memory limit,
// is not set without one (the downward API would give the node's memory),
// and is left to extraEnv when that sets it.
func TestChartGoMemLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  []string
		want string // "" : not set
	}{
		{"limit", []string{"resources.limits.memory=96Mi"}, "100663296"},
		{"no limit", []string{"resources.limits=null"}, ""},
		{"extraEnv", []string{"extraEnv[0].name=GOMEMLIMIT", "extraEnv[0].value=80MiB"}, "80MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := ciValues("defaults")
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			m := render(t, args...)
			c := container(t, only[appsv1.Deployment](t, m))
			n := 0
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" {
					n++
				}
			}
			pf := materialize(t, m)
			got, ok := pf.env["GOMEMLIMIT"]
			switch {
			case n > 1:
				t.Errorf("GOMEMLIMIT set %d times", n)
			case tc.want == "" && ok:
				t.Errorf("GOMEMLIMIT = %q without a memory limit", got)
			case tc.want != "" && got != tc.want:
				t.Errorf("GOMEMLIMIT = %q, want %q", got, tc.want)
			}
		})
	}
}
