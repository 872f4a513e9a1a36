package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kilnbuild/kiln/anyimage"
	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
)

// Each package's errors reach their SPEC exit code however they are
// wrapped or joined; what nobody classified is an internal error, never
// "verification failed".
func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{&targets.ConfigError{Key: "app.name"}, exitUsage},
		{&targets.SelectionError{Field: "targets"}, exitUsage},
		{&build.MissingError{Problem: "no layout"}, exitUsage},
		{&build.InputError{Input: "SOURCE_DATE_EPOCH"}, exitUsage},
		{&anyimage.RefError{Ref: "x"}, exitUsage},
		{usageError{errors.New("unknown flag")}, exitUsage},
		{fileError{"kiln.yaml", "no such config file", ""}, exitUsage},
		{&build.CompileError{Row: "a", Err: errors.New("exit status 1")}, exitCompile},
		{&build.RegistryError{Op: "pushing", Err: errors.New("denied")}, exitRegistry},
		{&build.SignError{Op: "making the SBOM", Err: errors.New("no build info")}, exitRegistry},
		{&sign.Error{Op: "loading key", Err: errors.New("wrong password")}, exitRegistry},
		{&anyimage.ReadError{Ref: "x", Err: errors.New("EOF")}, exitRegistry},
		{&build.VerifyError{Failures: []string{"a"}}, exitVerify},
		{findingsError{errors.New("stale")}, exitVerify},
		{fmt.Errorf("verifying a: %w", &build.RegistryError{Op: "reading", Err: errors.New("EOF")}), exitRegistry},
		{errors.Join(&build.RegistryError{Op: "tagging", Err: errors.New("x")}, &build.RegistryError{Op: "tagging", Err: errors.New("y")}), exitRegistry},
		{errors.New("creating a build directory: no space left on device"), exitInternal},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%T %v) = %d, want %d", tt.err, tt.err, got, tt.want)
		}
	}
}

// A selection is reported with the flag it came from, which the library
// does not name.
func TestSelectionNamesTheFlag(t *testing.T) {
	err := fmt.Errorf("planning: %w", &targets.SelectionError{File: "kiln.yaml", Field: "targets", Problem: `no target named "nope"`, Fix: "use one of static"})
	if got, want := message(err), `kiln.yaml: --target: no target named "nope" (fix: use one of static)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}
