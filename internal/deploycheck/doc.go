// Package deploycheck holds no code, only tests: they check what operators
// copy from this repository and no cluster or proxy runs here — the
// Dockerfile, the Helm chart in charts/gatehouse, the front Envoy in
// examples/envoy and the Istio recipes in examples/istio — by parsing them
// into the types their consumers use (Kubernetes, go-control-plane, istio.io/api)
// with unknown fields refused, and by running what can run here.
package deploycheck
