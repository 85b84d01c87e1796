// Package e2e benchmarks the whole gatehouse server in one process: the real
// server.Server (gRPC options, recover interceptor, ext_authz adapter,
// decision core, user cache, Redis directory) against a real redis-server,
// driven over loopback gRPC with the load benchmark's requests. It is where
// CPU and allocation profiles of the serving path come from:
//
//	go test -run '^$' -bench Serve -cpuprofile cpu.prof -memprofile mem.prof ./bench/e2e
//
// The client runs in the same process, so its frames appear in the profile
// too; server frames are those under grpc's (*Server).handleStream.
package e2e
