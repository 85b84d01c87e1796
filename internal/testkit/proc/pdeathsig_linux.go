package proc

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the child when the thread that started
// it dies, keeping whatever else the caller put in SysProcAttr.
func setPdeathsig(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
