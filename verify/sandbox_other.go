//go:build !linux

package verify

import (
	"context"
	"errors"
)

// runSandbox needs Linux namespaces; elsewhere run.* checks are skipped
// with this reason.
func runSandbox(context.Context, sandboxConfig) (*sandboxResult, error) {
	return nil, errors.New("running image binaries needs Linux (user, mount, pid and network namespaces)")
}
