package targets

// This file is SPEC §2 as code: which libc × link × base × app combinations
// kiln builds, and why it refuses the rest before compiling anything.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kilnbuild/kiln/internal/cache"
)

// checkTarget refuses combinations that cannot work, judged from the config
// alone. What needs the base image's files (its loader, its glibc version)
// is judged by build's base inspection; what needs the app's packages, by
// Analyze.
func checkTarget(cfg *Config, t *Target, tc *TargetConfig) error {
	key := "targets." + t.Name
	bad := func(sub, fix, format string, args ...any) error {
		return cfg.Errorf(key+sub, fix, format, args...)
	}
	switch tc.Builder {
	case "", "host":
		if tc.BuilderImage != "" || tc.BuilderRuntime != "" || tc.BuilderNetwork {
			return bad(".builder_image", "remove them, or set builder: container", "builder_image, builder_runtime and builder_network apply to builder: container")
		}
	case "container":
		if tc.BuilderImage == "" {
			return bad(".builder_image", "set builder_image, e.g. golang:1.22-alpine@sha256:<64 hex>", "builder: container needs an image to build in")
		}
		img, err := ParseBase(tc.BuilderImage)
		if err != nil || img.Kind != BaseRegistry {
			return bad(".builder_image", "write an image reference, e.g. golang:1.22-alpine@sha256:<64 hex>", "%q is not an image reference", tc.BuilderImage)
		}
		if !img.Pinned() {
			return bad(".builder_image", "pin it: docker/podman image inspect --format '{{.Digest}}' or crane digest give the digest", "%q is not pinned by digest; the toolchain could change under you", tc.BuilderImage)
		}
		switch tc.BuilderRuntime {
		case "", "auto", "docker", "podman":
		default:
			return bad(".builder_runtime", "use auto, docker or podman", "unknown runtime %q", tc.BuilderRuntime)
		}
		t.Builder = Builder{Container: true, Image: img, Runtime: cmp.Or(tc.BuilderRuntime, "auto"), Network: tc.BuilderNetwork}
	default:
		return bad(".builder", "use host or container", "unknown builder %q", tc.Builder)
	}
	switch t.Link {
	case LinkDynamic:
	case LinkStatic:
		switch t.Libc {
		case LibcNone:
			return bad(".link", "remove link", "link applies to cgo targets; libc: none is always static")
		case LibcGlibc:
			return bad(".link", "use libc: musl with link: static for a fully static cgo binary, or link: dynamic on a glibc base",
				"a static glibc binary breaks NSS and dlopen: DNS through nsswitch.conf and user/group lookups fail or load a host-mismatched libc at run time")
		}
	default:
		return bad(".link", "use dynamic or static", "unknown link mode %q", t.Link)
	}
	if t.Libc == LibcNone && tc.CC != "" {
		return bad(".cc", "remove cc", "cc applies to cgo targets; libc: none builds with CGO_ENABLED=0")
	}
	if t.Base.Kind == BaseScratch {
		switch {
		case t.Libc == LibcGlibc:
			return bad(".base", "use a glibc base (distroless/base, debian), or libc: musl with link: static on scratch",
				"scratch has no glibc loader or libraries, so a glibc binary cannot start on it (`exec /app: no such file or directory`)")
		case t.Libc == LibcMusl && t.Link != LinkStatic:
			return bad(".base", "add link: static to build a fully static musl binary, or use an alpine base",
				"scratch has no musl loader, so a dynamic musl binary cannot start on it")
		}
	}
	return nil
}

// Analyze finds, for each row, which packages need cgo (go list with
// CGO_ENABLED on and off), and refuses a libc: none target whose app needs
// cgo: such a binary either does not compile or compiles a stub that fails
// at run time. host is the caller's environment (for the go command).
// Answers are kept in c between runs (see analyzecache.go); nil disables it.
func (p *Plan) Analyze(ctx context.Context, host []string, c *cache.Cache) error {
	// Rows share an analysis when go list sees the same thing: the same
	// tags and build environment (the platform, and a target's own env such
	// as GOFLAGS or GOEXPERIMENT), leaving out CC, which go list never runs,
	// and CGO_ENABLED, which analyzeCgo sets both ways.
	type key struct{ tags, env string }
	listEnv := func(r *Row) []string {
		return slices.DeleteFunc(r.BuildEnv(host), func(kv string) bool {
			return strings.HasPrefix(kv, "CC=") || strings.HasPrefix(kv, "CGO_ENABLED=")
		})
	}
	keyOf := func(r *Row) key { return key{strings.Join(r.Target.Tags, "\x00"), strings.Join(listEnv(r), "\x00")} }
	// The walk of the module runs once, and only if some row can be cached.
	tree := sync.OnceValue(func() *moduleTree { return readModuleTree(p.Dir) })
	// One analysis per distinct tags × platform, run concurrently.
	found := map[key][]CgoPackage{}
	started := map[key]bool{} // only this goroutine touches it
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range p.Rows {
		r := &p.Rows[i]
		k := keyOf(r)
		if started[k] {
			continue
		}
		started[k] = true
		g.Go(func() error {
			pkgs, err := cachedAnalysis(gctx, c, tree, p.Dir, p.Config.App.Main, r.Target.Tags, listEnv(r))
			if err != nil {
				return p.Config.Errorf("app.main", "make `go list "+p.Config.App.Main+"` work in "+p.Dir, "%v", err)
			}
			mu.Lock()
			found[k] = pkgs
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		pkgs := found[keyOf(r)]
		r.Cgo = pkgs
		switch {
		case r.Target.Libc == LibcNone && len(pkgs) > 0:
			names := make([]string, len(pkgs))
			for i, c := range pkgs {
				names[i] = c.String()
			}
			return p.Config.Errorf("targets."+r.Target.Name+".libc", "build this target with libc: glibc or libc: musl (link: static for scratch), or replace those packages with pure-Go ones",
				"libc: none builds with CGO_ENABLED=0, but the app needs cgo: %s", strings.Join(names, "; "))
		case r.Target.Libc != LibcNone && len(pkgs) == 0:
			r.Warnings = append(r.Warnings, "no package outside the standard library uses cgo; libc: none would give a static binary that runs on any base")
		}
	}
	return nil
}

// Decision says in one line what kiln will build for the row and why.
func (r Row) Decision() string {
	where := ""
	if r.Target.Builder.Container {
		where = " inside " + r.Target.Builder.Image.Raw
	}
	cc := r.Toolchain.CC
	if cc == "" {
		cc = "the image's cc"
	}
	switch {
	case r.Target.Libc == LibcNone:
		return "static Go binary (CGO_ENABLED=0)" + where
	case r.Target.Link == LinkStatic:
		return fmt.Sprintf("fully static cgo binary against musl with %s%s (-linkmode external -extldflags -static)", cc, where)
	}
	return fmt.Sprintf("dynamic cgo binary against %s with %s%s; the image must provide %s", r.Target.Libc, cc, where, r.Loader())
}
