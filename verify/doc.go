// Package verify checks an assembled image: ELF analysis of the binary, the
// image's own filesystem, resolver prediction, runtime smoke tests. It takes
// a v1.Image and never touches the network.
//
// Everything it reads is untrusted: layers may hold "../" names, symlinks
// pointing outside the image, device files or enormous entries, and binaries
// may be malformed. Parsing is bounded (see [Limits]), never panics, and
// nothing is ever read or written outside the image model or the directory
// the caller hands to [FS.Materialize].
package verify
