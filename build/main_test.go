package build

import (
	"os"
	"testing"

	"github.com/kilnbuild/kiln/verify"
)

// TestMain enters the sandbox when the release tests' run.* checks re-run
// this test binary as it.
func TestMain(m *testing.M) {
	if code, ok := verify.SandboxInit(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
