// Command kiln builds verified container images for every target a Go
// service ships to. This package is the CLI only: it parses flags, loads the
// config through viper, calls targets and build, renders results and maps
// errors to exit codes.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// Exit codes (SPEC §6).
const (
	exitOK       = 0
	exitVerify   = 1 // a verification failed (or a lock pin is stale)
	exitUsage    = 2 // usage or config error
	exitCompile  = 3
	exitRegistry = 4 // registry, publish or signing failure
)

func main() {
	// kiln re-runs itself as the sandbox of the run.* checks: that process
	// must become the sandbox, not a second kiln.
	if code, ok := verify.SandboxInit(); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if cmd.CalledAs() == "" {
		// cobra found no command to run: an unknown command. (Flag errors
		// are usageErrors already, through root's FlagErrorFunc.)
		err = usageError{err}
	}
	fmt.Fprintln(os.Stderr, "kiln: "+strings.ReplaceAll(err.Error(), "\n", "\n  "))
	return exitCode(err)
}

// usageError marks a mistake in how kiln was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// findingsError means the command ran and what it checked did not pass.
type findingsError struct{ error }

func exitCode(err error) int {
	var (
		ce *targets.ConfigError
		ue usageError
		pe *build.CompileError
		re *build.RegistryError
		ve *build.VerifyError
		se *sign.Error
		fe findingsError
	)
	switch {
	case errors.As(err, &ce), errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &pe):
		return exitCompile
	case errors.As(err, &re), errors.As(err, &se):
		return exitRegistry
	case errors.As(err, &fe), errors.As(err, &ve):
		return exitVerify
	}
	return exitVerify
}
