package deploycheck

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Istio's ports a meshed gatehouse needs: istiod's xDS and certificate
// service (a sidecar's control plane) and HBONE (ambient's ztunnel tunnel).
const (
	istiodXDSPort  = 15012
	istioHBONEPort = 15008
)

// TestChartTLS: with TLS on, the Secret's files reach gatehouse as
// GATEHOUSE_TLS_* through one projected volume that kubelet keeps current
// (gatehouse reloads it), the probes move to the plain metrics port, and
// the forward-auth URL NOTES.txt prints is https.
func TestChartTLS(t *testing.T) {
	t.Parallel()
	m := render(t, ciValues("tls")...)
	pf := materialize(t, m)
	cfg := parseConfig(t, pf)
	if !strings.HasSuffix(cfg.TLSCertFile, "/etc/gatehouse/tls/tls.crt") || !strings.HasSuffix(cfg.TLSKeyFile, "/etc/gatehouse/tls/tls.key") ||
		!strings.HasSuffix(cfg.TLSClientCAFile, "/etc/gatehouse/tls/client-ca.crt") {
		t.Errorf("TLS files %q %q %q", cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile)
	}
	d := only[appsv1.Deployment](t, m)
	for _, v := range d.Spec.Template.Spec.Volumes {
		// A subPath mount or an env var from a Secret is never updated:
		// the files must come from a Secret volume.
		if v.Name == "tls" && v.Projected == nil {
			t.Errorf("tls volume %+v: want a projected Secret volume, which kubelet updates", v.VolumeSource)
		}
	}
	for _, vm := range container(t, d).VolumeMounts {
		if vm.SubPath != "" {
			t.Errorf("volume %s mounted with subPath %q: kubelet never updates such a file, so it would never be reloaded", vm.Name, vm.SubPath)
		}
	}

	notes := renderNotes(t, "gatehouse", "--namespace", "gatehouse", "-f", filepath.Join(repoRoot(t), chartDir, "ci", "tls-values.yaml"))
	if !strings.Contains(notes, "HTTP forward-auth: https://gatehouse.gatehouse.svc.cluster.local:8080") ||
		!strings.Contains(notes, "client certificates required") {
		t.Errorf("NOTES.txt with TLS on:\n%s", notes)
	}

	t.Run("cert-manager", func(t *testing.T) {
		m := render(t, append(ciValues("defaults"),
			"--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true",
			"--set", "tls.certManager.issuerRef.name=cluster-ca", "--set", "tls.certManager.issuerRef.kind=ClusterIssuer",
			"--set", "tls.clientAuth.enabled=true")...)
		cert := only[certificate](t, m)
		d := only[appsv1.Deployment](t, m)
		var secrets []string
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == "tls" && v.Projected != nil {
				for _, src := range v.Projected.Sources {
					secrets = append(secrets, src.Secret.Name)
				}
			}
		}
		if len(secrets) != 2 || secrets[0] != cert.Spec.SecretName || secrets[1] != cert.Spec.SecretName {
			t.Errorf("the tls volume mounts %v, want the Certificate's Secret %q (certificate and ca.crt)", secrets, cert.Spec.SecretName)
		}
		for _, name := range []string{"gatehouse", "gatehouse.gatehouse.svc", "gatehouse-headless.gatehouse.svc.cluster.local"} {
			if !slices.Contains(cert.Spec.DNSNames, name) {
				t.Errorf("Certificate dnsNames %v lack %s, a name Envoy or Istio dials", cert.Spec.DNSNames, name)
			}
		}
		if cert.Spec.IssuerRef.Name != "cluster-ca" || cert.Spec.IssuerRef.Kind != "ClusterIssuer" || !slices.Contains(cert.Spec.Usages, "server auth") {
			t.Errorf("Certificate spec %+v", cert.Spec)
		}
	})

	for name, args := range map[string][]string{
		"no source":             {"--set", "tls.enabled=true"},
		"two sources":           {"--set", "tls.enabled=true", "--set", "tls.existingSecret=s", "--set", "tls.certManager.enabled=true", "--set", "tls.certManager.issuerRef.name=ca"},
		"no issuer":             {"--set", "tls.enabled=true", "--set", "tls.certManager.enabled=true"},
		"client auth, TLS off":  {"--set", "tls.clientAuth.enabled=true"},
		"a secret, TLS off":     {"--set", "tls.existingSecret=s"},
		"reserved in config":    {"--set", "config.GATEHOUSE_TLS_CERT_FILE=/x"},
		"drain in config":       {"--set", "config.GATEHOUSE_DRAIN_PERIOD=1s"},
		"negative drain":        {"--set", "drainSeconds=-1"},
		"unknown mesh mode":     {"--set", "networkPolicy.mesh=linkerd"},
		"old Kubernetes, zones": {"--set", "service.trafficDistribution=PreferClose", "--kube-version", "1.30.0"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			t.Parallel()
			if _, err := helmTemplate(t, append(ciValues("defaults"), args...)...); err == nil {
				t.Errorf("helm template %v succeeded", args)
			}
		})
	}
}

// egressPorts returns the numeric egress ports of np and the rule of each.
func egressPorts(np *networkingv1.NetworkPolicy) map[int]networkingv1.NetworkPolicyEgressRule {
	out := map[int]networkingv1.NetworkPolicyEgressRule{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.Type == intstr.Int {
				out[p.Port.IntValue()] = r
			}
		}
	}
	return out
}

func ingressHas(np *networkingv1.NetworkPolicy, port int) bool {
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.Type == intstr.Int && p.Port.IntValue() == port {
				return true
			}
		}
	}
	return false
}

// TestChartNetworkPolicyMesh: the default NetworkPolicy opens nothing of
// Istio's; mesh: sidecar opens egress to istiod (15012), without which an
// injected sidecar never gets its configuration and the pod serves nothing;
// mesh: ambient opens HBONE (15008) in, from the callers' namespaces, and
// out.
func TestChartNetworkPolicyMesh(t *testing.T) {
	t.Parallel()
	def := only[networkingv1.NetworkPolicy](t, render(t, ciValues("defaults")...))
	if _, ok := egressPorts(def)[istiodXDSPort]; ok || ingressHas(def, istioHBONEPort) {
		t.Errorf("the default NetworkPolicy opens Istio's ports")
	}

	sidecar := only[networkingv1.NetworkPolicy](t, render(t, ciValues("istio")...))
	r, ok := egressPorts(sidecar)[istiodXDSPort]
	if !ok {
		t.Fatalf("mesh: sidecar opens no egress to istiod on %d", istiodXDSPort)
	}
	if len(r.To) != 0 {
		t.Errorf("istiod egress limited to %v without istiodTo", r.To)
	}
	if ingressHas(sidecar, istioHBONEPort) {
		t.Errorf("mesh: sidecar opens HBONE")
	}
	limited := only[networkingv1.NetworkPolicy](t, render(t, append(ciValues("istio"),
		"--set", "networkPolicy.istiodTo[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=istio-system")...))
	if r := egressPorts(limited)[istiodXDSPort]; len(r.To) != 1 {
		t.Errorf("istiodTo not applied: %v", r.To)
	}

	ambient := only[networkingv1.NetworkPolicy](t, render(t, ciValues("tls")...))
	if !ingressHas(ambient, istioHBONEPort) {
		t.Fatalf("mesh: ambient opens no ingress on %d (HBONE)", istioHBONEPort)
	}
	if _, ok := egressPorts(ambient)[istioHBONEPort]; !ok {
		t.Errorf("mesh: ambient opens no egress on %d (HBONE)", istioHBONEPort)
	}
	if _, ok := egressPorts(ambient)[istiodXDSPort]; ok {
		t.Errorf("mesh: ambient opens istiod: ztunnel, not the pod, talks to it")
	}
	// HBONE comes in from the callers' namespaces only, like the ports it
	// carries.
	withCallers := only[networkingv1.NetworkPolicy](t, render(t, append(ciValues("tls"),
		"--set", "networkPolicy.ingress.namespaces[0]=meet")...))
	for _, rule := range withCallers.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil && p.Port.IntValue() == istioHBONEPort && len(rule.From) == 0 {
				t.Errorf("HBONE open to every namespace although ingress.namespaces is set")
			}
		}
	}
}
