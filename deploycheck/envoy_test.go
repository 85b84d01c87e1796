package deploycheck

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"

	// Every type the example's typed_config fields name must be linked in,
	// so that protoregistry.GlobalTypes resolves it; an @type missing here
	// fails the test, as it would fail Envoy.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/internal/config"
)

const envoyExample = "examples/envoy/envoy.yaml"

// loadedBootstrap is an Envoy bootstrap with every Any resolved.
type loadedBootstrap struct {
	bootstrap *bootstrapv3.Bootstrap
	// typed holds every message packed in an Any, unpacked, in document
	// order, with the path of the field that held it.
	typed []typedConfig
}

type typedConfig struct {
	path string
	msg  proto.Message
}

// loadEnvoyBootstrap converts YAML to JSON and decodes it with protojson into
// a v3 Bootstrap, refusing unknown fields; then it unpacks every Any, at any
// depth, and runs the protoc-gen-validate rules (Envoy's own config
// validation) on the bootstrap and on every unpacked message.
func loadEnvoyBootstrap(yamlDoc []byte) (*loadedBootstrap, error) {
	j, err := yamlToJSON(yamlDoc)
	if err != nil {
		return nil, err
	}
	b := &bootstrapv3.Bootstrap{}
	opts := protojson.UnmarshalOptions{DiscardUnknown: false, Resolver: protoregistry.GlobalTypes}
	if err := opts.Unmarshal(j, b); err != nil {
		return nil, fmt.Errorf("decode bootstrap: %w", err)
	}
	lb := &loadedBootstrap{bootstrap: b}
	if err := validatePGV("bootstrap", b); err != nil {
		return nil, err
	}
	if err := lb.walk("", b.ProtoReflect()); err != nil {
		return nil, err
	}
	return lb, nil
}

// validatePGV runs the generated ValidateAll of m, when it has one.
func validatePGV(path string, m proto.Message) error {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// walk visits every set field of m; each Any is unpacked (an unknown type
// is an error), validated and walked in turn.
func (lb *loadedBootstrap) walk(path string, m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: resolve %s: %w", path, a.GetTypeUrl(), err)
		}
		if err := validatePGV(path, inner); err != nil {
			return err
		}
		lb.typed = append(lb.typed, typedConfig{path, inner})
		return lb.walk(path, inner.ProtoReflect())
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = lb.walk(fmt.Sprintf("%s[%d]", p, i), l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = lb.walk(fmt.Sprintf("%s[%s]", p, k.String()), mv.Message())
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = lb.walk(p, v.Message())
		}
		return err == nil
	})
	return err
}

// unpack returns the message packed in a, which walk already resolved.
func unpack[T proto.Message](t *testing.T, a *anypb.Any) T {
	t.Helper()
	var zero T
	m := zero.ProtoReflect().New().Interface()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("unpack %s as %T: %v", a.GetTypeUrl(), zero, err)
	}
	return m.(T)
}

func TestEnvoyExample(t *testing.T) {
	t.Parallel()
	lb, err := loadEnvoyBootstrap(readRepoFile(t, envoyExample))
	if err != nil {
		t.Fatalf("%s: %v", envoyExample, err)
	}
	b := lb.bootstrap
	if len(lb.typed) < 5 {
		t.Errorf("only %d typed configs resolved: the walk is not reaching them", len(lb.typed))
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" && a != "::1" {
		t.Errorf("admin listens on %q: keep it on loopback", a)
	}

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}

	// The HTTP connection manager.
	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 || len(listeners[0].GetFilterChains()) != 1 || len(listeners[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatalf("want one listener with one filter chain holding the HTTP connection manager")
	}
	hcm := unpack[*hcmv3.HttpConnectionManager](t, listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig())
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
		t.Errorf("normalize_path %v, merge_slashes %v: both must be true, gatehouse matches the path Envoy sends", hcm.GetNormalizePath(), hcm.GetMergeSlashes())
	}
	if got := hcm.GetPathWithEscapedSlashesAction(); got != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Errorf("path_with_escaped_slashes_action %v, want REJECT_REQUEST", got)
	}
	if got := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); got != corev3.HttpProtocolOptions_REJECT_REQUEST {
		t.Errorf("headers_with_underscores_action %v, want REJECT_REQUEST", got)
	}

	// The filters: ext_authz before the router, the router last.
	filters := hcm.GetHttpFilters()
	var names []string
	for _, f := range filters {
		names = append(names, f.GetName())
	}
	iAuthz := slices.Index(names, "envoy.filters.http.ext_authz")
	if iAuthz < 0 || names[len(names)-1] != "envoy.filters.http.router" {
		t.Fatalf("http_filters %v: want envoy.filters.http.ext_authz, and the router last", names)
	}
	authzFilterName := names[iAuthz]
	ea := unpack[*extauthzv3.ExtAuthz](t, filters[iAuthz].GetTypedConfig())
	gs := ea.GetGrpcService()
	if gs.GetEnvoyGrpc().GetClusterName() != "gatehouse" || ea.GetHttpService() != nil {
		t.Errorf("ext_authz service %v: want grpc_service.envoy_grpc.cluster_name gatehouse", gs)
	}
	if gs.GetTimeout() == nil {
		t.Errorf("ext_authz has no timeout")
	} else {
		checkProxyTimeout(t, "ext_authz grpc_service", gs.GetTimeout().AsDuration())
	}
	checkAllowedHeaders(t, ea)
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("transport_api_version %v, want V3", ea.GetTransportApiVersion())
	}
	if ea.GetFailureModeAllow() {
		t.Errorf("failure_mode_allow is true: gatehouse being down would let every request through")
	}
	if ea.GetStatusOnError().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("status_on_error %v, want 503", ea.GetStatusOnError())
	}
	if ea.GetWithRequestBody() != nil {
		t.Errorf("with_request_body set: gatehouse never reads the body")
	}

	// The gatehouse cluster: HTTP/2, health-checked on the ext_authz service.
	gc := clusters["gatehouse"]
	if gc == nil {
		t.Fatalf("no cluster gatehouse")
	}
	const hpoKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	hpoAny, ok := gc.GetTypedExtensionProtocolOptions()[hpoKey]
	if !ok {
		t.Fatalf("cluster gatehouse: no typed_extension_protocol_options[%s]", hpoKey)
	}
	hpo := unpack[*upstreamhttpv3.HttpProtocolOptions](t, hpoAny)
	if hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Errorf("cluster gatehouse does not speak HTTP/2 (explicit_http_config.http2_protocol_options): gRPC needs it")
	}
	hc := gc.GetHealthChecks()
	if len(hc) != 1 || hc[0].GetGrpcHealthCheck().GetServiceName() != authorizationService {
		t.Errorf("cluster gatehouse health checks %v: want a gRPC health check of %s", hc, authorizationService)
	}
	eps := gc.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		t.Fatalf("cluster gatehouse: want one endpoint")
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	checkEnvoyTarget(t, sa.GetAddress(), sa.GetPortValue())

	// Routes.
	vhosts := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhosts) != 1 {
		t.Fatalf("want one virtual host, got %d", len(vhosts))
	}
	perRoute := func(r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
		a, ok := r.GetTypedPerFilterConfig()[authzFilterName]
		if !ok {
			return nil
		}
		return unpack[*extauthzv3.ExtAuthzPerRoute](t, a)
	}
	identity := []string{config.DefaultHeaderUserID, config.DefaultHeaderClientID, config.DefaultHeaderScope}
	var healthz, api *routev3.Route
	for _, r := range vhosts[0].GetRoutes() {
		for key := range r.GetTypedPerFilterConfig() {
			if !slices.Contains(names, key) {
				t.Errorf("route %v: typed_per_filter_config key %q names no filter of the chain %v (Envoy would ignore it)", r.GetMatch(), key, names)
			}
		}
		if c := r.GetRoute().GetCluster(); clusters[c] == nil {
			t.Errorf("route %v goes to unknown cluster %q", r.GetMatch(), c)
		}
		pr := perRoute(r)
		if pr.GetDisabled() {
			// Without ext_authz nothing strips identity headers a client
			// sends: the route must.
			for _, h := range identity {
				if !slices.Contains(r.GetRequestHeadersToRemove(), h) {
					t.Errorf("route %v disables ext_authz but lets a client-sent %s through", r.GetMatch(), h)
				}
			}
		} else {
			for _, h := range identity {
				if slices.Contains(r.GetRequestHeadersToRemove(), h) {
					t.Errorf("route %v removes %s after ext_authz set it", r.GetMatch(), h)
				}
			}
		}
		switch {
		case r.GetMatch().GetPath() == "/healthz":
			healthz = r
		case r.GetMatch().GetPrefix() == "/external-api/":
			api = r
		}
	}
	if healthz == nil || !perRoute(healthz).GetDisabled() {
		t.Errorf("no route for /healthz with ext_authz disabled")
	}
	if api == nil {
		t.Fatalf("no route for /external-api/")
	}
	if got := perRoute(api).GetCheckSettings().GetContextExtensions()[routes.ExtTable]; got != routes.MeetTableName {
		t.Errorf("/external-api/ context_extensions[%s] = %q, want %q", routes.ExtTable, got, routes.MeetTableName)
	}
	last := vhosts[0].GetRoutes()[len(vhosts[0].GetRoutes())-1]
	if last.GetMatch().GetPrefix() != "/" || perRoute(last).GetDisabled() {
		t.Errorf("the last route %v must catch everything else, with ext_authz on", last.GetMatch())
	}
}

// checkEnvoyTarget: the gatehouse address is the chart's headless Service for
// release "gatehouse" in namespace "gatehouse", on its grpc port.
func checkEnvoyTarget(t *testing.T, addr string, port uint32) {
	t.Helper()
	m := render(t, ciValues("defaults")...)
	for _, svc := range all[corev1.Service](m) {
		if fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace) != addr {
			continue
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Envoy's STRICT_DNS cluster targets %s, which is not headless: every HTTP/2 connection would stick to one pod", addr)
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "grpc" && uint32(p.Port) == port {
				return
			}
		}
		t.Errorf("Service %s has no grpc port %d", svc.Name, port)
		return
	}
	t.Errorf("Envoy targets %s:%d, which is no Service of the chart", addr, port)
}

// TestEnvoyLoaderIsStrict breaks the example on purpose: the loader must
// refuse an unknown field, an unknown @type, and a value Envoy would reject.
func TestEnvoyLoaderIsStrict(t *testing.T) {
	t.Parallel()
	orig := string(readRepoFile(t, envoyExample))
	for name, tc := range map[string]struct{ old, new string }{
		"unknown field":        {"failure_mode_allow: false", "failure_mode_alow: false"},
		"unknown field in Any": {"disabled: true", "disable: true"},
		"unknown @type":        {"ext_authz.v3.ExtAuthzPerRoute", "ext_authz.v3.ExtAuthzPerRouteX"},
		"pgv rule":             {"connect_timeout: 1s", "connect_timeout: -1s"},
		"bad enum":             {"transport_api_version: V3", "transport_api_version: V4"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(orig, tc.old) {
				t.Fatalf("%s no longer contains %q: update this test", envoyExample, tc.old)
			}
			broken := strings.Replace(orig, tc.old, tc.new, 1)
			if _, err := loadEnvoyBootstrap([]byte(broken)); err == nil {
				t.Errorf("replacing %q by %q was accepted", tc.old, tc.new)
			}
		})
	}
	// An Any type nobody linked in: an empty registry resolves nothing.
	j, err := yamlToJSON([]byte(orig))
	if err != nil {
		t.Fatal(err)
	}
	if err := (protojson.UnmarshalOptions{Resolver: new(protoregistry.Types)}).Unmarshal(j, &bootstrapv3.Bootstrap{}); err == nil || !regexp.MustCompile(`resolve|not found`).MatchString(err.Error()) {
		t.Errorf("an unresolvable @type was accepted: %v", err)
	}
}

const envoyHTTPServiceExample = "examples/envoy/http-service.yaml"

// envoyIdentityLeaks lists the routes of hcm where the identity headers a
// client sends could reach the upstream unchecked: ext_authz does not run
// there (disabled per route, virtual host or route configuration, by
// FilterConfig or ExtAuthzPerRoute, disabled in the chain, or enabled only
// for some requests by filter_enabled or filter_enabled_metadata, which is
// how Istio limits it to its CUSTOM rules) and no request_headers_to_remove
// list removes them. It also lists the routes where ext_authz runs and a
// removal list deletes what gatehouse set.
func envoyIdentityLeaks(t *testing.T, hcm *hcmv3.HttpConnectionManager) []string {
	t.Helper()
	var filter *hcmv3.HttpFilter
	var ea *extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		if f.GetTypedConfig().GetTypeUrl() == "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" {
			if filter != nil {
				t.Fatalf("two ext_authz filters: not modelled")
			}
			filter, ea = f, unpack[*extauthzv3.ExtAuthz](t, f.GetTypedConfig())
		}
	}
	rc := hcm.GetRouteConfig()
	if rc == nil {
		t.Fatalf("no inline route_config: RDS is not modelled")
	}
	var leaks []string
	if filter == nil {
		return append(leaks, "no ext_authz filter: every route")
	}
	// Some requests only, unless Envoy denies those it does not check.
	partial := ea.GetFilterEnabledMetadata() != nil
	if fe := ea.GetFilterEnabled().GetDefaultValue(); fe != nil && !(fe.GetNumerator() >= 100 && fe.GetDenominator() == typev3.FractionalPercent_HUNDRED) {
		partial = true
	}
	if ea.GetDenyAtDisable().GetDefaultValue().GetValue() {
		partial = false
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute() == nil {
				continue // a redirect or direct response sends nothing upstream
			}
			where := fmt.Sprintf("virtual host %s route %v", vh.GetName(), r.GetMatch())
			runs := !filter.GetDisabled()
			// The most specific per-filter configuration decides.
			for _, cfgs := range []map[string]*anypb.Any{rc.GetTypedPerFilterConfig(), vh.GetTypedPerFilterConfig(), r.GetTypedPerFilterConfig()} {
				a, ok := cfgs[filter.GetName()]
				if !ok {
					continue
				}
				if a.GetTypeUrl() == "type.googleapis.com/envoy.config.route.v3.FilterConfig" {
					fc := unpack[*routev3.FilterConfig](t, a)
					runs = !fc.GetDisabled()
					if fc.GetConfig() != nil && !fc.GetDisabled() {
						runs = !unpack[*extauthzv3.ExtAuthzPerRoute](t, fc.GetConfig()).GetDisabled()
					}
					continue
				}
				runs = !unpack[*extauthzv3.ExtAuthzPerRoute](t, a).GetDisabled()
			}
			runs = runs && !partial
			var removed []string
			removed = append(removed, rc.GetRequestHeadersToRemove()...)
			removed = append(removed, vh.GetRequestHeadersToRemove()...)
			removed = append(removed, r.GetRequestHeadersToRemove()...)
			for _, h := range identityHeaderNames {
				has := slices.ContainsFunc(removed, func(s string) bool { return strings.EqualFold(s, h) })
				switch {
				case !runs && !has:
					leaks = append(leaks, fmt.Sprintf("%s: ext_authz does not run and a client's %s passes", where, h))
				case runs && has:
					leaks = append(leaks, fmt.Sprintf("%s: %s is removed after gatehouse set it", where, h))
				}
			}
		}
	}
	return leaks
}

// loadHCM loads an Envoy example and returns its one HTTP connection manager.
func loadHCM(t *testing.T, doc []byte) *hcmv3.HttpConnectionManager {
	t.Helper()
	lb, err := loadEnvoyBootstrap(doc)
	if err != nil {
		t.Fatal(err)
	}
	ls := lb.bootstrap.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 || len(ls[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatalf("want one listener with one filter chain holding the HTTP connection manager")
	}
	return unpack[*hcmv3.HttpConnectionManager](t, ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig())
}

// TestEnvoyRecipesNeverPassIdentityUnchecked: in both Envoy recipes every
// route to an upstream either runs ext_authz (gatehouse sets the identity
// headers or removes the client's) or removes the identity headers itself;
// the checker is shown to catch each way of skipping ext_authz.
func TestEnvoyRecipesNeverPassIdentityUnchecked(t *testing.T) {
	t.Parallel()
	for _, rel := range []string{envoyExample, envoyHTTPServiceExample} {
		if leaks := envoyIdentityLeaks(t, loadHCM(t, readRepoFile(t, rel))); len(leaks) > 0 {
			t.Errorf("%s:\n%s", rel, strings.Join(leaks, "\n"))
		}
	}
	orig := string(readRepoFile(t, envoyExample))
	const (
		healthzRemove = "                          request_headers_to_remove: [x-auth-user-id, x-auth-client-id, x-auth-scope]\n"
		apiPerRoute   = `                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                              check_settings:
                                context_extensions:
                                  gatehouse.routes: meet
`
		authzConfig = "                      transport_api_version: V3\n"
	)
	for name, tc := range map[string]struct{ old, new string }{
		"health check without removal": {healthzRemove, ""},
		"API route disabled by FilterConfig": {apiPerRoute, `                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              disabled: true
`},
		"enabled by metadata, as Istio does": {authzConfig, authzConfig + `                      filter_enabled_metadata:
                        filter: envoy.filters.http.rbac
                        path: [{key: istio_ext_authz_shadow_effective_policy_id}]
                        value: {string_match: {prefix: istio-ext-authz}}
`},
		"enabled for half the requests": {authzConfig, authzConfig + `                      filter_enabled:
                        default_value: {numerator: 50, denominator: HUNDRED}
                        runtime_key: ext_authz.enabled
`},
		"removal after ext_authz": {apiPerRoute, apiPerRoute + "                          request_headers_to_remove: [x-auth-scope]\n"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if strings.Count(orig, tc.old) != 1 {
				t.Fatalf("%s no longer contains %q once: update this test", envoyExample, tc.old)
			}
			if leaks := envoyIdentityLeaks(t, loadHCM(t, []byte(strings.Replace(orig, tc.old, tc.new, 1)))); len(leaks) == 0 {
				t.Errorf("no leak found")
			}
		})
	}
}

// proxyTimeoutMargin is what a proxy's timeout keeps above gatehouse's
// worst case: scheduling, the network, the JSON answer.
const proxyTimeoutMargin = 250 * time.Millisecond

// checkProxyTimeout: a proxy's timeout on the check is above gatehouse's
// worst case, two directory lookups (application, user) each bounded by
// GATEHOUSE_REDIS_TIMEOUT, plus a margin, so that gatehouse answers a slow
// directory with its own 503 (JSON detail, Retry-After, decision id) before
// the proxy gives up with a bare status_on_error; and it is still a bound
// (a few seconds, not Istio's 600s).
func checkProxyTimeout(t *testing.T, what string, got time.Duration) {
	t.Helper()
	var redisTimeout time.Duration
	for _, s := range config.Settings() {
		if s.Env == "GATEHOUSE_REDIS_TIMEOUT" {
			redisTimeout = must(time.ParseDuration(s.Default))
		}
	}
	if redisTimeout <= 0 {
		t.Fatal("no default for GATEHOUSE_REDIS_TIMEOUT")
	}
	floor := 2*redisTimeout + proxyTimeoutMargin
	if got < floor || got > 5*time.Second {
		t.Errorf("%s: timeout %s; want at least %s (2 × GATEHOUSE_REDIS_TIMEOUT %s + %s) and at most 5s",
			what, got, floor, redisTimeout, proxyTimeoutMargin)
	}
}

// checkAllowedHeaders: the gRPC check carries only the headers gatehouse
// reads, never the client's cookies: Envoy sends every header when
// allowed_headers is unset.
func checkAllowedHeaders(t *testing.T, ea *extauthzv3.ExtAuthz) {
	t.Helper()
	var exact []string
	for _, m := range ea.GetAllowedHeaders().GetPatterns() {
		if m.GetExact() == "" {
			t.Errorf("allowed_headers pattern %v: list exact names only", m)
			continue
		}
		exact = append(exact, m.GetExact())
	}
	if len(exact) == 0 {
		t.Fatal("ext_authz has no allowed_headers: every client header, cookies included, is sent to gatehouse")
	}
	for _, need := range []string{"authorization", "x-request-id", "traceparent"} {
		if !slices.Contains(exact, need) {
			t.Errorf("allowed_headers %v lacks %s, which gatehouse reads", exact, need)
		}
	}
	for _, never := range []string{"cookie", "proxy-authorization"} {
		if slices.Contains(exact, never) {
			t.Errorf("allowed_headers %v sends %s to gatehouse", exact, never)
		}
	}
}

const envoyTLSExample = "examples/envoy/gatehouse-tls.yaml"

// TestEnvoyTLSExample: the transport_socket of examples/envoy/gatehouse-tls.yaml,
// put into envoy.yaml's gatehouse cluster as its comment says, is a valid
// bootstrap (strict decoding, every @type resolved, Envoy's validation
// rules), and speaks what gatehouse's TLS listener needs: TLS 1.2 or later,
// ALPN h2, gatehouse's certificate verified by CA and name, and a client
// certificate for mutual TLS.
func TestEnvoyTLSExample(t *testing.T) {
	t.Parallel()
	var boot map[string]any
	if err := decodeYAMLStrict(readRepoFile(t, envoyExample), &boot); err != nil {
		t.Fatal(err)
	}
	var fragment map[string]any
	if err := decodeYAMLStrict(readRepoFile(t, envoyTLSExample), &fragment); err != nil {
		t.Fatal(err)
	}
	if len(fragment) != 1 || fragment["transport_socket"] == nil {
		t.Fatalf("%s: want only a transport_socket, got keys %v", envoyTLSExample, slices.Collect(maps.Keys(fragment)))
	}
	clusters, _ := boot["static_resources"].(map[string]any)["clusters"].([]any)
	merged := false
	for _, c := range clusters {
		if cm, ok := c.(map[string]any); ok && cm["name"] == "gatehouse" {
			cm["transport_socket"] = fragment["transport_socket"]
			merged = true
		}
	}
	if !merged {
		t.Fatalf("%s has no gatehouse cluster", envoyExample)
	}
	doc, err := json.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := loadEnvoyBootstrap(doc)
	if err != nil {
		t.Fatalf("%s with %s: %v", envoyExample, envoyTLSExample, err)
	}
	var gc *clusterv3.Cluster
	for _, c := range lb.bootstrap.GetStaticResources().GetClusters() {
		if c.GetName() == "gatehouse" {
			gc = c
		}
	}
	ts := gc.GetTransportSocket()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("transport_socket %q, want envoy.transport_sockets.tls", ts.GetName())
	}
	up := unpack[*tlsv3.UpstreamTlsContext](t, ts.GetTypedConfig())
	ctc := up.GetCommonTlsContext()
	if v := ctc.GetTlsParams().GetTlsMinimumProtocolVersion(); v != tlsv3.TlsParameters_TLSv1_2 && v != tlsv3.TlsParameters_TLSv1_3 {
		t.Errorf("tls_minimum_protocol_version %v: gatehouse accepts TLS 1.2 or later only", v)
	}
	if !slices.Equal(ctc.GetAlpnProtocols(), []string{"h2"}) {
		t.Errorf("alpn_protocols %v, want [h2]: gRPC needs HTTP/2", ctc.GetAlpnProtocols())
	}
	vc := ctc.GetValidationContext()
	if vc.GetTrustedCa().GetFilename() == "" || len(vc.GetMatchTypedSubjectAltNames()) == 0 {
		t.Errorf("validation_context %v: want a trusted CA and a subject name to match", vc)
	}
	sni := up.GetSni()
	eps := gc.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()
	if addr := eps[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress(); sni != addr {
		t.Errorf("sni %q is not the cluster's address %q", sni, addr)
	}
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		if m.GetMatcher().GetExact() != sni {
			t.Errorf("subject name matcher %v: want the sni %q", m.GetMatcher(), sni)
		}
	}
	if certs := ctc.GetTlsCertificates(); len(certs) != 1 || certs[0].GetCertificateChain().GetFilename() == "" || certs[0].GetPrivateKey().GetFilename() == "" {
		t.Errorf("tls_certificates %v: want Envoy's client certificate and key for mutual TLS", certs)
	}
	if hc := gc.GetHealthChecks(); len(hc) != 1 || hc[0].GetGrpcHealthCheck() == nil {
		t.Errorf("the gatehouse cluster lost its gRPC health check")
	}
}

// TestEnvoyHTTPServiceDeny: the http_service recipe passes to the client
// what gatehouse puts on a deny besides its body: the body's type and the
// decision id (authz.DecisionIDHeader) a client quotes to support, and it
// times the check out above gatehouse's worst case.
func TestEnvoyHTTPServiceDeny(t *testing.T) {
	t.Parallel()
	hcm := loadHCM(t, readRepoFile(t, envoyHTTPServiceExample))
	var ea *extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.ext_authz" {
			ea = unpack[*extauthzv3.ExtAuthz](t, f.GetTypedConfig())
		}
	}
	if ea == nil {
		t.Fatal("no ext_authz filter")
	}
	var exact []string
	for _, m := range ea.GetHttpService().GetAuthorizationResponse().GetAllowedClientHeaders().GetPatterns() {
		exact = append(exact, m.GetExact())
	}
	for _, want := range []string{"content-type", authz.DecisionIDHeader} {
		if !slices.Contains(exact, want) {
			t.Errorf("allowed_client_headers %v lacks %s: Envoy drops it from gatehouse's deny", exact, want)
		}
	}
	checkProxyTimeout(t, "http_service server_uri", ea.GetHttpService().GetServerUri().GetTimeout().AsDuration())
}
