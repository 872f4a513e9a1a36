package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel stop the registry when the test binary dies
// without running its teardown (a -timeout panic, a kill).
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
