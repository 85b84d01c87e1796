//go:build !linux

package proc

import "os/exec"

// setPdeathsig does nothing outside Linux; callers' cleanups stop the
// children.
func setPdeathsig(*exec.Cmd) {}
