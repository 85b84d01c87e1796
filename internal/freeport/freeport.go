// Package freeport finds an unused TCP port on 127.0.0.1 for a child process
// (redis-server, nginx, Caddy, a server under load) that must be told its
// port on its command line, rather than report the one it picked.
package freeport

import (
	"fmt"
	"net"
)

// Loopback asks the kernel for an unused port on 127.0.0.1. The port is
// released before the caller's process binds it, so another process can take
// it in between: callers retry on a bind failure.
func Loopback() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
