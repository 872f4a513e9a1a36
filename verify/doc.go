// Package verify checks an assembled image: ELF analysis of the binary, the
// image's own filesystem, resolver prediction, runtime smoke tests. It takes
// a v1.Image and never touches the network.
//
// Everything it reads is untrusted: layers may hold "../" names, symlinks
// pointing outside the image, device files or enormous entries, and binaries
// may be malformed. Parsing is bounded (see [Limits]), never panics, and
// nothing is ever read or written outside the image model or the directory
// the caller hands to [FS.Materialize].
//
// The static checks predict what other programs will do in the image:
// glibc's and musl's loaders, Go's net, crypto/x509 and time (by the rules
// of the Go release that built the binary), the runtime's user lookup.
// Each prediction reads the image's files as the image's process would
// (proc.go), names the rule it follows in its evidence, and is held to the
// real program by a differential test (*_diff_test.go). The run.* checks
// only observe what the binary does; they never change its environment to
// see it.
package verify
