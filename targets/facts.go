package targets

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kilnbuild/kiln/internal/cache"
)

// Facts are what the decision of SPEC §2 needs to know beyond the config:
// the machine's compilers, which packages of the app use cgo, what each
// base holds, which container runtimes and builder images are here. They
// are gathered in one step before deciding (build.Prepare gathers them;
// FindTools and ListCgo here are its parts that need no registry) and never
// changed after: Decide only reads them, so the same config and facts give
// the same plan, and what a release was decided from can be recorded.
//
// A fact that could not be gathered holds the error. An error with a
// method Refusal() (problem, fix string) says the config names something
// that is not there (a layout entry, a platform of a base, a runtime):
// Decide reports it at the key that named it, as a *ConfigError. Any other
// error (a registry that failed) is reported as it is.
type Facts struct {
	HostArch string // GOARCH of the machine that builds
	GoMod    bool   // the module root (Plan.Dir) has a go.mod

	// Tools maps each C compiler command a row may use (ChooseToolchain's
	// choice, "zig" for "zig cc …") to its path; a missing one is absent.
	Tools map[string]string
	// Glibc maps the libc.so.6 of each glibc toolchain to the newest
	// GLIBC_ version it defines ("" when it cannot be read).
	Glibc map[string]string
	// Cgo maps each row (Row.ID) to what go list found about its packages.
	Cgo map[string]CgoListing
	// Bases maps each base reference as written (BaseRef.Raw) to what it is.
	Bases map[string]BaseFacts
	// Runtimes maps each builder_runtime asked for (auto, docker, podman) to
	// the runtime found for it.
	Runtimes map[string]RuntimeFacts
	// BuilderImages maps "<runtime> <builder image>" to nil when the image
	// is present (or was pulled), else to why it cannot be used.
	BuilderImages map[string]error
}

// CgoListing is the cgo analysis of one row: the non-standard packages
// with cgo files, or why go list could not say.
type CgoListing struct {
	Packages []CgoPackage
	Err      error
}

// BaseFacts is what a base reference resolved to.
type BaseFacts struct {
	Err    error  // it could not be loaded; nothing else is set
	Digest string // the digest it names: an index or a single image; "" for scratch
	// Platforms lists the platforms the base has ("linux/arm64"), as it
	// lists them; nil for scratch, which has every platform.
	Platforms []string
	// Images holds, for each platform a row builds on it, that platform's
	// image.
	Images map[string]BaseImage
}

// BaseImage is one platform's image of a base.
type BaseImage struct {
	Err    error  // reading it failed
	Digest string // its manifest's digest; "" for scratch
	// Files is what the decision needs from its files, read only for the
	// dynamic cgo rows on a base other than scratch (nil otherwise).
	Files *BaseFiles
}

// BaseFiles is what a base platform image's own files say about the libc
// binaries it can run.
type BaseFiles struct {
	Loaders      map[string]bool `json:"loaders"`                 // each libc loader path of the platform: is it a file in the image?
	Glibc        string          `json:"glibc,omitempty"`         // the image's libc.so.6
	GlibcVersion string          `json:"glibc_version,omitempty"` // its newest GLIBC_ symbol version
}

// RuntimeFacts is the container runtime found for a builder_runtime.
type RuntimeFacts struct {
	Name string // docker or podman
	Path string
	Err  error // no usable runtime: what was tried
}

// BuilderImageKey names a builder image on a runtime in Facts.BuilderImages.
func BuilderImageKey(runtime, image string) string { return runtime + " " + image }

// FindTools looks up the C compiler command of every cgo row built on the
// host, each command once (finding zig can cost an npm start-up), with
// look (nil: LookTool). The result is Facts.Tools.
func FindTools(p *Plan, hostArch string, look func(string) (string, error)) map[string]string {
	if look == nil {
		look = LookTool
	}
	found, tried := map[string]string{}, map[string]bool{}
	for _, r := range p.Rows {
		if r.Target.Builder.Container {
			continue
		}
		tc, err := ChooseToolchain(r.Target.Libc, r.Platform, hostArch, r.Target.CC)
		cmd := tc.Command()
		if err != nil || cmd == "" || tried[cmd] {
			continue
		}
		tried[cmd] = true
		if path, err := look(cmd); err == nil {
			found[cmd] = path
		}
	}
	return found
}

// GlibcToolchains lists the libc.so.6 of each glibc toolchain the plan's
// rows may link against: the files whose versions Facts.Glibc holds.
func GlibcToolchains(p *Plan, hostArch string) []string {
	var out []string
	for _, r := range p.Rows {
		if r.Target.Libc != LibcGlibc || r.Target.Builder.Container {
			continue
		}
		if tc, err := ChooseToolchain(r.Target.Libc, r.Platform, hostArch, ""); err == nil && !slices.Contains(out, tc.LibcSO) {
			out = append(out, tc.LibcSO)
		}
	}
	return out
}

// HasGoMod reports whether the plan's module root has a go.mod (Facts.GoMod).
func HasGoMod(p *Plan) bool {
	st, err := os.Stat(filepath.Join(p.Dir, "go.mod"))
	return err == nil && !st.IsDir()
}

// ListCgo runs the cgo analysis (go list with CGO_ENABLED on and off) for
// every row, once per distinct tags × build environment, up to four at once,
// and returns each row's listing (Facts.Cgo). host is the caller's
// environment (for the go command). Answers are kept in c between runs
// (see analyzecache.go); nil disables it.
func ListCgo(ctx context.Context, p *Plan, host []string, c *cache.Cache) map[string]CgoListing {
	// Rows share an analysis when go list sees the same thing: the same
	// tags and build environment (the platform, and a target's own env such
	// as GOFLAGS or GOEXPERIMENT), leaving out CC, which go list never runs,
	// and CGO_ENABLED, which analyzeCgo sets both ways.
	type key struct{ tags, env string }
	listEnv := func(r Row) []string {
		return slices.DeleteFunc(r.BuildEnv(host), func(kv string) bool {
			return strings.HasPrefix(kv, "CC=") || strings.HasPrefix(kv, "CGO_ENABLED=")
		})
	}
	keyOf := func(r Row) key { return key{strings.Join(r.Target.Tags, "\x00"), strings.Join(listEnv(r), "\x00")} }
	// The walk of the module runs once, and only if some row can be cached.
	tree := sync.OnceValue(func() *moduleTree { return readModuleTree(p.Dir) })
	found := map[key]CgoListing{}
	started := map[key]bool{} // only this goroutine touches it
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(4)
	for _, r := range p.Rows {
		k := keyOf(r)
		if started[k] {
			continue
		}
		started[k] = true
		g.Go(func() error {
			pkgs, err := cachedAnalysis(ctx, c, tree, p.Dir, p.Config.App.Main, r.Target.Tags, listEnv(r))
			mu.Lock()
			found[k] = CgoListing{Packages: pkgs, Err: err}
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	out := make(map[string]CgoListing, len(p.Rows))
	for _, r := range p.Rows {
		out[r.ID()] = found[keyOf(r)]
	}
	return out
}
