package proxytest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the proxy if the test binary dies
// without running its cleanups (a panic, a timeout, SIGKILL).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
