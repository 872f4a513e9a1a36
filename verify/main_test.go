package verify

import (
	"os"
	"testing"
)

// TestMain enters the sandbox when the run.* tests re-run this test binary
// as it.
func TestMain(m *testing.M) {
	if code, ok := SandboxInit(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
