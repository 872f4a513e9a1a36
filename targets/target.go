package targets

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Libc is the C library a target's binary links against, which decides
// CGO_ENABLED, the C compiler, the loader and the bases it can run on.
type Libc string

const (
	LibcNone  Libc = "none"  // CGO_ENABLED=0: a static Go binary for scratch or distroless/static
	LibcGlibc Libc = "glibc" // CGO_ENABLED=1 against glibc: distroless/base, debian, ubuntu
	LibcMusl  Libc = "musl"  // CGO_ENABLED=1 against musl: alpine
)

// Target is one validated entry of the targets map, with the app-level
// build settings already merged with the target's own.
type Target struct {
	Name    string
	Libc    Libc
	Base    BaseRef
	Default bool
	Link    string   // LinkDynamic or LinkStatic
	CC      string   // the cc key: the C compiler instead of kiln's pick
	Builder Builder  // where the go build runs
	Tags    []string // build tags: app.tags then the target's
	Ldflags []string // app.ldflags then the target's
	Env     []string // app.env then the target's, KEY=VALUE; later entries win
	Policy  Policy   // what verification demands of this target's images
}

// Platform is an OS/architecture pair as Go and OCI name it.
type Platform struct {
	OS      string
	Arch    string
	Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// supportedArch lists the GOARCH values kiln builds for, with the OCI
// variants each accepts.
var supportedArch = map[string][]string{
	"amd64":   {""},
	"arm64":   {"", "v8"},
	"arm":     {"v6", "v7"},
	"386":     {""},
	"ppc64le": {""},
	"s390x":   {""},
	"riscv64": {""},
}

// ParsePlatform parses "linux/amd64" or "linux/arm/v7".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("%q is not OS/ARCH[/VARIANT]", s)
	}
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if p.OS != "linux" {
		return Platform{}, fmt.Errorf("%q: only linux images are built", s)
	}
	variants, ok := supportedArch[p.Arch]
	if !ok {
		return Platform{}, fmt.Errorf("%q: unknown architecture %q", s, p.Arch)
	}
	for _, v := range variants {
		if v == p.Variant {
			return p, nil
		}
	}
	return Platform{}, fmt.Errorf("%q: architecture %s takes variant %s", s, p.Arch, strings.Join(variants, " or "))
}

// BaseKind says where a base image comes from.
type BaseKind int

const (
	BaseScratch  BaseKind = iota // no base: the image holds only kiln's layer
	BaseRegistry                 // a registry reference pinned by digest
	BaseLayout                   // an OCI image layout on disk: oci:<path>[:<name>]@sha256:…
)

// BaseRef is a parsed `base:` value.
type BaseRef struct {
	Kind BaseKind
	Raw  string

	// Named is the reference as written without its digest:
	// `alpine:3.19`, `oci:dist/bases:static`.
	Named string

	// Registry bases: the repository and the tag, when one was written.
	Repo name.Repository
	Tag  string

	// Layout bases: the layout directory (as written) and the optional
	// org.opencontainers.image.ref.name to look up when there is no digest.
	Path    string
	RefName string

	Digest string // sha256:<hex>, empty when unpinned
}

// Pinned reports whether the base names exact bytes (scratch always does).
func (b BaseRef) Pinned() bool { return b.Kind == BaseScratch || b.Digest != "" }

// Name is the base's name without digest, as recorded in the
// org.opencontainers.image.base.name annotation.
func (b BaseRef) Name() string {
	if b.Kind == BaseScratch {
		return "scratch"
	}
	return b.Named
}

// WithDigest returns the reference text pinned to digest, keeping the
// tag or layout name for readers: `alpine:3.19@sha256:…`.
func (b BaseRef) WithDigest(digest string) string {
	return b.Name() + "@" + digest
}

// ParseBase parses a base reference: `scratch`, `oci:<path>[:<name>][@sha256:<hex>]`
// or a registry reference `host/repo[:tag][@sha256:<hex>]`. A missing digest is
// not an error here (kiln lock needs to read such references); Validate
// refuses it for builds.
func ParseBase(s string) (BaseRef, error) {
	b := BaseRef{Raw: s}
	if s == "scratch" {
		b.Kind = BaseScratch
		return b, nil
	}
	rest, digest, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if _, err := name.NewDigest("example.invalid/x@" + digest); err != nil || !strings.HasPrefix(digest, "sha256:") {
			return b, fmt.Errorf("%q: %q is not a sha256 digest (sha256: and 64 lowercase hex digits)", s, digest)
		}
		b.Digest = digest
	}
	b.Named = rest
	if path, ok := strings.CutPrefix(rest, "oci:"); ok {
		b.Kind = BaseLayout
		if i := strings.LastIndex(path, ":"); i >= 0 && !strings.Contains(path[i:], "/") {
			path, b.RefName = path[:i], path[i+1:]
		}
		if path == "" {
			return b, fmt.Errorf("%q: the layout path is empty", s)
		}
		b.Path = path
		return b, nil
	}
	b.Kind = BaseRegistry
	ref, err := name.ParseReference(rest)
	if err != nil {
		return b, fmt.Errorf("%q is not an image reference: %v", s, err)
	}
	b.Repo = ref.Context()
	if t, ok := ref.(name.Tag); ok && strings.Contains(strings.TrimPrefix(rest, ref.Context().RegistryStr()), ":") {
		b.Tag = t.TagStr()
	}
	return b, nil
}

// Link modes of a cgo target.
const (
	LinkDynamic = "dynamic" // against the image's loader and shared libc
	LinkStatic  = "static"  // fully static cgo binary (musl only): runs on scratch
)

// loaders are the PT_INTERP paths of each libc per architecture: what a
// dynamic binary asks the kernel to run, and so what its base must contain.
var loaders = map[Libc]map[string]string{
	LibcGlibc: {
		"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1", "arm/v7": "/lib/ld-linux-armhf.so.3",
		"386": "/lib/ld-linux.so.2", "ppc64le": "/lib64/ld64.so.2", "s390x": "/lib/ld64.so.1", "riscv64": "/lib/ld-linux-riscv64-lp64d.so.1",
	},
	LibcMusl: {
		"amd64": "/lib/ld-musl-x86_64.so.1", "arm64": "/lib/ld-musl-aarch64.so.1", "arm/v7": "/lib/ld-musl-armhf.so.1",
		"386": "/lib/ld-musl-i386.so.1", "ppc64le": "/lib/ld-musl-powerpc64le.so.1", "s390x": "/lib/ld-musl-s390x.so.1", "riscv64": "/lib/ld-musl-riscv64.so.1",
	},
}

// Loader returns the dynamic loader libc uses on pl ("" for none).
func Loader(libc Libc, pl Platform) string {
	return loaders[libc][archKey(pl)]
}

// Loader is the loader the row's binary will ask for: "" when it is static.
func (r Row) Loader() string {
	if r.Target.Libc == LibcNone || r.Target.Link == LinkStatic {
		return ""
	}
	return Loader(r.Target.Libc, r.Platform)
}

// Builder is where a target's go build runs: on the host, or inside a
// builder image (golang:*-alpine) through docker or podman.
type Builder struct {
	Container bool
	Image     BaseRef // pinned by digest
	Runtime   string  // auto, docker or podman
	Network   bool    // the build container may reach the network
}

func (b Builder) String() string {
	if !b.Container {
		return "host"
	}
	return "container"
}
