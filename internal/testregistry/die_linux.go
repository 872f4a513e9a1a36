package testregistry

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel stop the registry when the test binary dies
// without running its teardown (a -timeout panic, a kill).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
