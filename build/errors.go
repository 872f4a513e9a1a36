package build

import (
	"fmt"
	"strings"
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
