package sign

import "fmt"

// Error is every failure of this package: loading a key, talking to a
// registry, a transparency log or Fulcio, reading or writing a layout. The
// CLI maps it to exit code 4. Messages never contain a key password.
type Error struct {
	Op  string // "loading key cosign.key", "signing registry.example/app@sha256:…", …
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Op, e.Err) }

func (e *Error) Unwrap() error { return e.Err }
