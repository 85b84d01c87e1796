// Package deploycheck holds no code, only tests: they check what operators
// copy from this repository and no cluster or proxy runs here — the
// Dockerfile, the Helm chart in charts/gatehouse, the front Envoy in
// examples/envoy, the Istio recipes in examples/istio, the ingress-nginx and
// Traefik recipes and the routes file they share — with the tools their
// consumers use: `helm lint` and `helm template` for the chart, BuildKit's
// linter and parser for the Dockerfile, and strict decoding into the types
// their consumers use (Kubernetes, go-control-plane, istio.io/api) with
// unknown fields refused. That decoding is the offline equivalent of a schema
// validator such as kubeconform, whose schemas would have to be downloaded.
// What can run here (gatehouse, nginx) runs.
//
// It is a module of its own (github.com/gatehouse-authz/gatehouse/deploycheck,
// built against the product in the directory above), so that the product's
// go.mod lists no Kubernetes, Istio or BuildKit module. Run it with
// `cd deploycheck && go test ./...` (part of `make test`).
package deploycheck
