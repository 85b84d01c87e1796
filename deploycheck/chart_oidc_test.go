package deploycheck

import (
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// oidcDir is where the chart mounts the OIDC files.
const oidcDir = "/etc/gatehouse/oidc"

// oidcFileEnv are the OIDC settings that name a mounted file.
var oidcFileEnv = []string{"GATEHOUSE_OIDC_CLIENT_SECRET_FILE", "GATEHOUSE_OIDC_CA_FILE", "GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE"}

// oidcVolume returns the (secret, key) pairs the projected "oidc" volume
// mounts, by path.
func oidcVolume(t *testing.T, d *appsv1.Deployment) map[string][2]string {
	t.Helper()
	got := map[string][2]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != "oidc" {
			continue
		}
		if v.Projected == nil {
			t.Fatalf("oidc volume %+v: want a projected Secret volume", v.VolumeSource)
		}
		for _, src := range v.Projected.Sources {
			for _, it := range src.Secret.Items {
				got[it.Path] = [2]string{src.Secret.Name, it.Key}
			}
		}
	}
	return got
}

// checkOIDCSecretsAreFiles: no OIDC secret reaches the container as an
// environment variable, and each file setting names a file of the oidc
// volume's mount.
func checkOIDCSecretsAreFiles(t *testing.T, m *manifest, pf podFiles) {
	t.Helper()
	c := container(t, only[appsv1.Deployment](t, m))
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "GATEHOUSE_OIDC_") {
			t.Errorf("env %s set on the container: OIDC secrets are mounted files", e.Name)
		}
	}
	if _, ok := pf.env["GATEHOUSE_OIDC_CLIENT_SECRET"]; ok {
		t.Errorf("GATEHOUSE_OIDC_CLIENT_SECRET is set: the secret belongs in a mounted file")
	}
	mounted := slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
		return vm.Name == "oidc" && vm.MountPath == oidcDir && vm.ReadOnly && vm.SubPath == ""
	})
	for _, env := range oidcFileEnv {
		if f, ok := pf.env[env]; ok && (!mounted || !strings.Contains(filepath.ToSlash(f), oidcDir+"/")) {
			t.Errorf("%s = %q is not a file of the oidc volume mounted at %s (mounted: %v)", env, f, oidcDir, mounted)
		}
	}
}

// egressPortsTo returns the ports of the NetworkPolicy's egress rules whose
// peers are exactly to, sorted.
func egressPortsTo(t *testing.T, m *manifest, to func([]networkingv1.NetworkPolicyPeer) bool) []string {
	t.Helper()
	var ports []string
	for _, r := range only[networkingv1.NetworkPolicy](t, m).Spec.Egress {
		if !to(r.To) {
			continue
		}
		for _, p := range r.Ports {
			ports = append(ports, p.Port.String()+"/"+string(*p.Protocol))
		}
	}
	sort.Strings(ports)
	return ports
}

// TestChartOIDC: the oidc scenario's settings, secrets from existing Secrets
// as files, the sub query, and egress to the provider.
func TestChartOIDC(t *testing.T) {
	t.Parallel()
	m := render(t, ciValues("oidc")...)
	d := only[appsv1.Deployment](t, m)
	pf := materialize(t, m)
	checkOIDCSecretsAreFiles(t, m, pf)
	want := map[string]string{
		"GATEHOUSE_MEET_PROFILE":              "2026.08",
		"GATEHOUSE_OIDC_INTROSPECTION_URL":    "https://keycloak.example.invalid/realms/meet/protocol/openid-connect/token/introspect",
		"GATEHOUSE_OIDC_ISSUER":               "https://keycloak.example.invalid/realms/meet",
		"GATEHOUSE_OIDC_CLIENT_AUTH":          "client_secret_basic",
		"GATEHOUSE_OIDC_REQUIRED_SCOPES":      "lasuite_meet,meet_rooms",
		"GATEHOUSE_OIDC_JWKS_URL":             "https://keycloak.example.invalid:8443/realms/meet/protocol/openid-connect/certs",
		"GATEHOUSE_OIDC_SIGNING_ALGORITHM":    "ES384",
		"GATEHOUSE_OIDC_ENCRYPTION_ALGORITHM": "ECDH-ES+A256KW",
		"GATEHOUSE_DIRECTORY_SUB_QUERY":       "SELECT id FROM meet_user WHERE sub = $1 AND is_active",
	}
	for k, v := range want {
		if got, ok := pf.env[k]; !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	// Values left null keep gatehouse's defaults: the chart says nothing.
	for _, k := range []string{"GATEHOUSE_OIDC_CLIENT_ID", "GATEHOUSE_OIDC_TIMEOUT", "GATEHOUSE_OIDC_CACHE_TTL", "GATEHOUSE_OIDC_ENCRYPTION_ENCODING"} {
		if v, ok := pf.env[k]; ok {
			t.Errorf("%s = %q set although its value is null", k, v)
		}
	}
	vol := oidcVolume(t, d)
	for path, src := range map[string][2]string{
		"client-secret":  {"meet-oidc", "OIDC_RS_CLIENT_SECRET"},
		"ca.crt":         {"oidc-provider", "ca.crt"},
		"encryption-key": {"meet-oidc-keys", "OIDC_RS_PRIVATE_KEY_STR"},
	} {
		if vol[path] != src {
			t.Errorf("oidc volume file %s comes from %v, want Secret %s key %s", path, vol[path], src[0], src[1])
		}
	}
	cfg := parseConfig(t, pf)
	sc, err := cfg.ServerConfig()
	if err != nil {
		t.Fatalf("server configuration: %v", err)
	}
	if sc.OIDC.ClientSecret != existingSecrets["meet-oidc"]["OIDC_RS_CLIENT_SECRET"] {
		t.Errorf("the OIDC client secret is not the existing Secret's")
	}
	if sc.OIDC.EncryptionKey == nil || !strings.HasSuffix(filepath.ToSlash(sc.OIDC.CAFile), oidcDir+"/ca.crt") {
		t.Errorf("decryption key %T, CA file %q: want the key and the CA of the existing Secrets", sc.OIDC.EncryptionKey, sc.OIDC.CAFile)
	}
	if sc.DirectorySubQuery != want["GATEHOUSE_DIRECTORY_SUB_QUERY"] {
		t.Errorf("DirectorySubQuery %q", sc.DirectorySubQuery)
	}
	// Egress to the provider: the introspection endpoint's port (443 for
	// https) and the JWKS's (8443), to networkPolicy.egress.oidcTo only.
	toProvider := func(to []networkingv1.NetworkPolicyPeer) bool {
		return len(to) == 1 && to[0].IPBlock != nil && to[0].IPBlock.CIDR == "203.0.113.0/24"
	}
	if got := egressPortsTo(t, m, toProvider); !slices.Equal(got, []string{"443/TCP", "8443/TCP"}) {
		t.Errorf("egress to the provider's peers: %v, want 443/TCP and 8443/TCP", got)
	}
	// The first request of a token waits for the provider: NOTES.txt says
	// to raise the proxy's ext_authz timeout.
	notes := renderNotes(t, release, "--namespace", namespace, "-f", filepath.Join(repoRoot(t), chartDir, "ci", "oidc-values.yaml"))
	if !strings.Contains(notes, "oidc.timeout") {
		t.Errorf("NOTES.txt with OIDC access tokens does not mention oidc.timeout:\n%s", notes)
	}
}

// TestChartOIDCSecret: oidc.clientSecret goes to the chart's Secret and is
// mounted as a file; oidc.existingSecret wins over it; the full scenario's
// egress opens the introspection endpoint's port to anywhere.
func TestChartOIDCSecret(t *testing.T) {
	t.Parallel()
	base := append(ciValues("defaults"), "--set", "meetProfile=2026.08",
		"--set", "oidc.introspectionUrl=https://idp.example.invalid/introspect",
		"--set", "oidc.issuer=https://idp.example.invalid",
		"--set", "oidc.clientSecret=ci-only-oidc-client-secret")
	t.Run("chart secret", func(t *testing.T) {
		t.Parallel()
		m := render(t, base...)
		checkSecretRefs(t, m)
		checkNoPlainSecrets(t, m)
		pf := materialize(t, m)
		checkOIDCSecretsAreFiles(t, m, pf)
		s := named[corev1.Secret](m, release)
		if s == nil || string(s.Data["oidc-client-secret"]) != "ci-only-oidc-client-secret" {
			t.Fatalf("the chart's Secret does not hold oidc.clientSecret under oidc-client-secret")
		}
		if got := oidcVolume(t, only[appsv1.Deployment](t, m)); len(got) != 1 || got["client-secret"] != [2]string{release, "oidc-client-secret"} {
			t.Errorf("oidc volume %v: want the chart Secret's oidc-client-secret only", got)
		}
		sc, err := parseConfig(t, pf).ServerConfig()
		if err != nil || sc.OIDC.ClientSecret != "ci-only-oidc-client-secret" {
			t.Errorf("the client secret gatehouse reads is not oidc.clientSecret (%v)", err)
		}
		// No caSecret: the system's CAs; no JWKS: JSON answers.
		if _, ok := pf.env["GATEHOUSE_OIDC_CA_FILE"]; ok {
			t.Errorf("GATEHOUSE_OIDC_CA_FILE set without oidc.caSecret")
		}
		// No oidcTo: the introspection endpoint's port, to anywhere.
		anywhere := func(to []networkingv1.NetworkPolicyPeer) bool { return len(to) == 0 }
		if got := egressPortsTo(t, m, anywhere); !slices.Contains(got, "443/TCP") {
			t.Errorf("egress to anywhere %v lacks the provider's 443/TCP", got)
		}
	})
	t.Run("existing secret wins", func(t *testing.T) {
		t.Parallel()
		m := render(t, append(base, "--set", "oidc.existingSecret=meet-oidc", "--set", "oidc.existingSecretKey=OIDC_RS_CLIENT_SECRET")...)
		checkSecretRefs(t, m)
		if s := named[corev1.Secret](m, release); s != nil {
			if _, ok := s.Data["oidc-client-secret"]; ok {
				t.Errorf("the chart's Secret holds oidc.clientSecret although oidc.existingSecret is set")
			}
		}
		sc, err := parseConfig(t, materialize(t, m)).ServerConfig()
		if err != nil || sc.OIDC.ClientSecret != existingSecrets["meet-oidc"]["OIDC_RS_CLIENT_SECRET"] {
			t.Errorf("the client secret gatehouse reads is not the existing Secret's (%v)", err)
		}
	})
	t.Run("full", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("full")...)
		anywhere := func(to []networkingv1.NetworkPolicyPeer) bool { return len(to) == 0 }
		got := egressPortsTo(t, m, anywhere)
		// http://idp.identity:8080 and https://idp.identity (443).
		if !slices.Contains(got, "8080/TCP") || !slices.Contains(got, "443/TCP") {
			t.Errorf("egress to anywhere %v lacks the provider's 8080/TCP and 443/TCP", got)
		}
	})
	t.Run("no oidc", func(t *testing.T) {
		t.Parallel()
		m := render(t, ciValues("defaults")...)
		pf := materialize(t, m)
		for env := range pf.env {
			if strings.HasPrefix(env, "GATEHOUSE_OIDC_") || env == "GATEHOUSE_DIRECTORY_SUB_QUERY" {
				t.Errorf("%s set by default", env)
			}
		}
		if got := oidcVolume(t, only[appsv1.Deployment](t, m)); len(got) != 0 {
			t.Errorf("oidc volume %v by default", got)
		}
	})
}

// TestChartRefusesOIDCMistakes: contradictory or mistyped oidc values fail
// "helm template" with a message naming what to fix.
func TestChartRefusesOIDCMistakes(t *testing.T) {
	t.Parallel()
	defaults := ciValues("defaults")
	on := slices.Clip(append(slices.Clone(defaults), "--set", "meetProfile=2026.08,oidc.introspectionUrl=https://idp/i,oidc.issuer=https://idp,oidc.clientSecret=s"))
	origin := []string{"--set", "jwt.secret=x,meetProfile=2026.08,oidc.introspectionUrl=https://idp/i,oidc.issuer=https://idp,oidc.clientSecret=s"}
	checkRefusals(t, map[string]refusal{
		// Render-time checks.
		"under 2025.10":            {append(defaults, "--set", "oidc.introspectionUrl=https://idp/i,oidc.issuer=https://idp,oidc.clientSecret=s"), `need meetProfile: "2026.08"`},
		"config url under 2025.10": {append(defaults, "--set", "config.GATEHOUSE_OIDC_INTROSPECTION_URL=https://idp/i"), `need meetProfile: "2026.08"`},
		"no issuer":                {append(defaults, "--set", "meetProfile=2026.08,oidc.introspectionUrl=https://idp/i,oidc.clientSecret=s"), "oidc.issuer"},
		"no client secret":         {append(defaults, "--set", "meetProfile=2026.08,oidc.introspectionUrl=https://idp/i,oidc.issuer=https://idp"), "oidc.clientSecret"},
		"encryption key, no jwks":  {append(on, "--set", "oidc.encryptionKeySecret.name=k,oidc.encryptionKeySecret.key=key.pem"), "oidc.jwksUrl"},
		"encryption key, no key":   {append(on, "--set", "oidc.jwksUrl=https://idp/jwks,oidc.encryptionKeySecret.name=k,oidc.encryptionKeySecret.key="), "encryptionKeySecret.key"},
		"issuer without url":       {append(defaults, "--set", "oidc.issuer=https://idp"), "oidc.introspectionUrl"},
		"timeout without url":      {append(defaults, "--set", "oidc.timeout=2s"), "oidc.introspectionUrl"},
		"secret without url":       {append(defaults, "--set", "oidc.clientSecret=s"), "oidc.introspectionUrl"},
		"existing without url":     {append(defaults, "--set", "oidc.existingSecret=meet-oidc"), "oidc.introspectionUrl"},
		"ca without url":           {append(defaults, "--set", "oidc.caSecret.name=ca"), "oidc.introspectionUrl"},
		"key without url":          {append(defaults, "--set", "oidc.encryptionKeySecret.name=k"), "oidc.introspectionUrl"},
		"sub query without url":    {[]string{"--set", "jwt.secret=x,directoryOrigin.url=postgres://g@db/meet,directoryOrigin.subQuery=SELECT id FROM u WHERE sub = $1"}, "oidc.introspectionUrl"},
		"sub query, no postgres":   {append(on, "--set", "directoryOrigin.subQuery=SELECT id FROM u WHERE sub = $1"), "postgres://"},
		"grpc origin":              {append(origin, "--set", "directoryOrigin.url=grpc://directory:9000"), "grpc"},
		"grpcs origin":             {append(origin, "--set", "directoryOrigin.url=grpcs://directory:9443"), "grpc"},
		"set twice":                {append(on, "--set", "config.GATEHOUSE_OIDC_ISSUER=https://other"), "GATEHOUSE_OIDC_ISSUER is set twice"},
		"client secret in config":  {append(on, "--set", "config.GATEHOUSE_OIDC_CLIENT_SECRET=s"), "GATEHOUSE_OIDC_CLIENT_SECRET"},
		"secret file in config":    {append(on, "--set", "config.GATEHOUSE_OIDC_CLIENT_SECRET_FILE=/s"), "GATEHOUSE_OIDC_CLIENT_SECRET_FILE"},
		"ca file in config":        {append(on, "--set", "config.GATEHOUSE_OIDC_CA_FILE=/ca"), "GATEHOUSE_OIDC_CA_FILE"},
		"key file in config":       {append(on, "--set", "config.GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE=/k"), "GATEHOUSE_OIDC_ENCRYPTION_KEY_FILE"},
		// The schema.
		"typo":                      {append(defaults, "--set", "oidc.introspectionURL=https://idp/i"), "introspectionURL"},
		"url scheme":                {append(defaults, "--set", "oidc.introspectionUrl=ftp://idp/i"), "introspectionUrl"},
		"jwks scheme":               {append(on, "--set", "oidc.jwksUrl=idp/jwks"), "jwksUrl"},
		"timeout not a duration":    {append(on, "--set", "oidc.timeout=5 seconds"), "timeout"},
		"cache TTL a number":        {append(on, "--set", "oidc.cacheTTL=60"), "cacheTTL"},
		"client auth":               {append(on, "--set", "oidc.clientAuth=private_key_jwt"), "clientAuth"},
		"HMAC signatures":           {append(on, "--set", "oidc.signingAlgorithm=HS256"), "signingAlgorithm"},
		"RSA1_5":                    {append(on, "--set", "oidc.encryptionAlgorithm=RSA1_5"), "encryptionAlgorithm"},
		"encoding":                  {append(on, "--set", "oidc.encryptionEncoding=A256CTR"), "encryptionEncoding"},
		"scopes a number":           {append(on, "--set", "oidc.requiredScopes=5"), "requiredScopes"},
		"scopes empty list":         {append(on, valuesFile(t, "oidc:\n  requiredScopes: []\n")...), "requiredScopes"},
		"scope with a space":        {append(on, valuesFile(t, "oidc:\n  requiredScopes: [\"a b\"]\n")...), "requiredScopes"},
		"empty client id":           {append(on, "--set", "oidc.clientId="), "clientId"},
		"bad secret name":           {append(on, "--set", "oidc.existingSecret=Meet_OIDC"), "existingSecret"},
		"oidcTo not a list":         {append(on, "--set", "networkPolicy.egress.oidcTo=x"), "oidcTo"},
		"encryption key not a dict": {append(on, "--set", "oidc.encryptionKeySecret=k"), "encryptionKeySecret"},
	})
}

// TestChartOriginEgress: with a directory of record, the NetworkPolicy opens
// its port (the URL's, else the scheme's), to directoryOriginTo's peers.
// Before, no rule let gatehouse reach Meet's database at all.
func TestChartOriginEgress(t *testing.T) {
	t.Parallel()
	toDB := func(peers []networkingv1.NetworkPolicyPeer) bool {
		return len(peers) == 1 && peers[0].PodSelector != nil && peers[0].PodSelector.MatchLabels["app"] == "meet-db"
	}
	anywhere := func(peers []networkingv1.NetworkPolicyPeer) bool { return len(peers) == 0 }
	for _, tc := range []struct {
		url, port string
		peers     bool
	}{
		{"postgres://gatehouse@meet-db:5433/meet", "5433/TCP", true},
		{"postgresql://gatehouse@meet-db/meet", "5432/TCP", false},
		{"grpcs://directory.example.invalid", "443/TCP", false},
	} {
		args := append(ciValues("defaults"), "--set", "directoryOrigin.url="+tc.url)
		to := anywhere
		if tc.peers {
			args = append(args, "--set", "networkPolicy.egress.directoryOriginTo[0].podSelector.matchLabels.app=meet-db")
			to = toDB
		}
		m := render(t, args...)
		if got := egressPortsTo(t, m, to); !slices.Contains(got, tc.port) {
			t.Errorf("%s: egress %v lacks %s", tc.url, got, tc.port)
		}
	}
}
