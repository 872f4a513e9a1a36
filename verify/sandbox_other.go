//go:build !linux

package verify

import (
	"context"
	"errors"
)

// SandboxInit is the sandbox's entry point (see sandbox_linux.go); there is
// no sandbox outside Linux, so this process is never one.
func SandboxInit() (code int, ok bool) { return 0, false }

// runSandbox needs Linux namespaces; elsewhere run.* checks are skipped
// with this reason.
func runSandbox(context.Context, sandboxConfig) (*sandboxResult, error) {
	return nil, errors.New("running image binaries needs Linux (user, mount, pid and network namespaces)")
}
