// Command kiln builds verified container images for every target a Go
// service ships to. This package is the CLI only: it parses flags, loads the
// config (KILN_* through viper, --set), calls the library packages, renders
// results and maps their errors to exit codes (errors.go).
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/kilnbuild/kiln/verify"
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
	fmt.Fprintln(os.Stderr, "kiln: "+strings.ReplaceAll(message(err), "\n", "\n  "))
	return exitCode(err)
}
