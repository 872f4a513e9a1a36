package build

import (
	"fmt"
	"strings"

	"github.com/kilnbuild/kiln/internal/explain"
)

// CompileError is a failed `go build`. Output is what the compiler printed.
// The CLI maps it to exit code 3.
type CompileError struct {
	Row    string // static-linux-amd64
	Output string
	Err    error
}

func (e *CompileError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("compiling %s: %v", e.Row, e.Err)
	}
	return fmt.Sprintf("compiling %s: %v\n%s", e.Row, e.Err, out)
}

func (e *CompileError) Unwrap() error { return e.Err }

// RegistryError is a failure talking to a registry or writing the published
// output. The CLI maps it to exit code 4. Err carries the registry's message.
type RegistryError struct {
	Op  string // "pushing", "tagging", "fetching base image", …
	Ref string
	Err error
}

func (e *RegistryError) Error() string {
	if e.Ref == "" {
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Ref, e.Err)
}

func (e *RegistryError) Unwrap() error { return e.Err }

// MissingError is something the config names that is not there: no OCI
// layout at a base's path, no such entry or digest in it, no image of a
// platform in a base, no container runtime, a builder image that cannot be
// pulled. The config or the machine must change, so it is a refusal:
// Refusal gives the problem and the fix, for the caller that knows which
// key named the thing (targets.Decide, targets.Lock). The CLI maps it to
// exit code 2.
type MissingError struct {
	Problem string
	Fix     string
}

func (e *MissingError) Error() string { return explain.Message("", e.Problem, e.Fix) }

// Refusal returns the problem and its fix.
func (e *MissingError) Refusal() (problem, fix string) { return e.Problem, e.Fix }

// InputError is a bad input to a release other than the config: the
// SOURCE_DATE_EPOCH variable, a release.json to merge. The CLI maps it to
// exit code 2.
type InputError struct {
	Input   string // SOURCE_DATE_EPOCH, or the file
	Problem string
	Fix     string
}

func (e *InputError) Error() string { return explain.Message(e.Input, e.Problem, e.Fix) }

// SignError is a signing stage that failed on kiln's side before anything
// was signed (an attestation sign.attest asks for that cannot be made);
// what the signer itself reports is a *sign.Error. The CLI maps it to exit
// code 4.
type SignError struct {
	Op  string // "making the SBOM of static-linux-amd64"
	Err error
}

func (e *SignError) Error() string { return e.Op + ": " + e.Err.Error() }

func (e *SignError) Unwrap() error { return e.Err }

// VerifyError is a verification that failed: the image would not start or
// not resolve names as required, or a split release's rows cannot be
// merged. The CLI maps it to exit code 1.
type VerifyError struct {
	Failures []string // "static linux/amd64: link.interp: PT_INTERP … is not in the image"
}

func (e *VerifyError) Error() string {
	return "verification failed:\n" + strings.Join(e.Failures, "\n")
}
