package testkit

import (
	"fmt"
	"net"
)

// FreePort asks the kernel for an unused TCP port on 127.0.0.1, for a child
// process (redis-server, nginx, Caddy, a server under load) that must be told
// its port on its command line rather than report the one it picked. The
// port is released before the child binds it, so another process can take it
// in between: callers retry on a bind failure.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
