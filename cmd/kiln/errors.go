package main

import (
	"errors"

	"github.com/kilnbuild/kiln/anyimage"
	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/internal/explain"
	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
)

// Exit codes (SPEC §6), and one for an error no package classified.
const (
	exitOK       = 0
	exitVerify   = 1 // a verification failed (or a lock pin is stale)
	exitUsage    = 2 // usage or config error
	exitCompile  = 3
	exitRegistry = 4 // registry, publish or signing failure
	exitInternal = 5 // an error nobody classified: a bug in kiln, never "verification failed"
)

// exitCodes is the one place an error becomes an exit code: each package
// returns its own error types, and the first row whose type is anywhere in
// the error's chain decides.
var exitCodes = []struct {
	code int
	is   []func(error) bool
}{
	{exitUsage, []func(error) bool{
		is[usageError], is[fileError], is[*targets.ConfigError], is[*targets.SelectionError],
		is[*build.MissingError], is[*build.InputError], is[*anyimage.RefError],
	}},
	{exitCompile, []func(error) bool{is[*build.CompileError]}},
	{exitRegistry, []func(error) bool{is[*build.RegistryError], is[*build.SignError], is[*sign.Error], is[*anyimage.ReadError]}},
	{exitVerify, []func(error) bool{is[findingsError], is[*build.VerifyError]}},
}

func is[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	for _, row := range exitCodes {
		for _, match := range row.is {
			if match(err) {
				return row.code
			}
		}
	}
	return exitInternal
}

// message is what kiln prints for err: a selection names the flag it came
// from, which the library cannot know.
func message(err error) string {
	var se *targets.SelectionError
	if errors.As(err, &se) {
		flag := map[string]string{"targets": "--target", "platforms": "--platform"}[se.Field]
		return explain.Message(se.File+": "+flag, se.Problem, se.Fix)
	}
	return err.Error()
}

// usageError marks a mistake in how kiln was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// fileError is a file kiln was pointed at (the config) that it cannot read
// or write.
type fileError struct {
	file, problem, fix string
}

func (e fileError) Error() string { return explain.Message(e.file, e.problem, e.fix) }

// findingsError means the command ran and what it checked did not pass.
type findingsError struct{ error }
