package main

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a child if the chaos driver dies without
// running its cleanups (a panic, SIGKILL), so no server outlives the run.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
