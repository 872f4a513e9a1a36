package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kilnbuild/kiln/internal/cache"

	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// Prepared is a row's base, resolved and inspected before compiling.
type Prepared struct {
	Base   *Base
	Image  v1.Image   // the base image for the row's platform
	Digest v1.Hash    // its manifest digest; zero for scratch
	FS     *verify.FS // the base's files, for cgo rows on a non-scratch base

	runtime  *containerRuntime // builder: container only
	warnings []string          // what the base inspection found worth saying
}

// Preflight resolves every row's base image and checks what the row needs
// from it, before anything is compiled: the platform, the loader a dynamic
// cgo binary asks for, and for glibc whether the toolchain's glibc is newer
// than the base's (the classic `GLIBC_2.34 not found`). Refusals are
// *targets.ConfigError; warnings go to the plan's rows. The result is
// aligned with p.Rows.
func Preflight(ctx context.Context, p *targets.Plan, keychain authn.Keychain) ([]*Prepared, error) {
	out, err := preflight(ctx, p, slices.Clone(p.Rows), registryOptions(keychain, 0), nil, &baseFiles{})
	if err != nil {
		return nil, err
	}
	for i, prep := range out {
		p.Rows[i].Warnings = append(p.Rows[i].Warnings, prep.warnings...)
	}
	return out, nil
}

// preflight is Preflight on a copy of p.Rows, so that it can run while
// Analyze adds its own findings to them; warnings stay in the result. What
// a base holds for a row is read from c when an earlier run recorded it for
// the same base digest; otherwise the base is flattened (once, through
// files) and the facts recorded.
func preflight(ctx context.Context, p *targets.Plan, rows []targets.Row, registry []remote.Option, c *cache.Cache, files *baseFiles) ([]*Prepared, error) {
	out, errs, err := resolveBases(ctx, rows, registry, c)
	if err != nil {
		return nil, err
	}
	hostGlibc := map[string]string{}
	runtimes := map[string]*containerRuntime{}
	images := map[string]bool{}
	for i := range rows {
		row := rows[i]
		ref := row.Target.Base
		if errs[i] != nil { // in plan order, with what the rows before it found
			return nil, relabelBase(p, row.Target.Name, errs[i])
		}
		prep := out[i]
		img, d := prep.Image, prep.Digest
		if bl := row.Target.Builder; bl.Container {
			key := "targets." + row.Target.Name + ".builder_image"
			if prep.runtime = runtimes[bl.Runtime]; prep.runtime == nil {
				if prep.runtime, err = findRuntime(ctx, bl.Runtime); err != nil {
					return nil, p.Config.Errorf("targets."+row.Target.Name+".builder_runtime", "install podman (Debian package podman) or docker with a running engine", "%v", err)
				}
				runtimes[bl.Runtime] = prep.runtime
			}
			if !images[bl.Image.Raw] {
				if err := prep.runtime.ensureImage(ctx, bl.Image.Raw); err != nil {
					return nil, p.Config.Errorf(key, "pull or load it (docker/podman pull), or correct the digest", "%v", err)
				}
				images[bl.Image.Raw] = true
			}
		}
		if !row.CGO() || ref.Kind == targets.BaseScratch {
			continue // scratch with cgo is refused from the config; static rows need nothing from the base
		}
		facts, fsys, err := inspectBase(c, files, img, d, row.Platform)
		if err != nil {
			return nil, &RegistryError{Op: "reading the files of base", Ref: ref.Raw + " (" + row.Platform.String() + ")", Err: err}
		}
		prep.FS = fsys
		if err := checkLoader(p, &row, facts); err != nil {
			return nil, err
		}
		if row.Target.Libc == targets.LibcGlibc {
			if w := glibcSkew(&row, facts, hostGlibc); w != "" {
				prep.warnings = append(prep.warnings, w)
			}
		}
	}
	return out, nil
}

// resolveBases fetches each distinct base and each row's platform image of
// it (manifest and config), all at once: they are independent round trips.
// Each row's problem is in errs, for the caller to report in plan order.
func resolveBases(ctx context.Context, rows []targets.Row, registry []remote.Option, c *cache.Cache) ([]*Prepared, []error, error) {
	type loaded struct {
		once sync.Once
		base *Base
		err  error
	}
	bases := map[string]*loaded{}
	for _, row := range rows {
		bases[row.Target.Base.Raw] = &loaded{}
	}
	// One puller: one connection setup per registry, not one per base.
	puller, err := remote.NewPuller(registry...)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*Prepared, len(rows))
	errs := make([]error, len(rows))
	var wg sync.WaitGroup
	for i, row := range rows {
		wg.Go(func() {
			l := bases[row.Target.Base.Raw]
			l.once.Do(func() { l.base, l.err = loadBase(ctx, row.Target.Base, c, remote.Reuse(puller)) })
			if errs[i] = l.err; errs[i] != nil {
				return
			}
			img, d, err := l.base.PlatformImage(row.Platform)
			if errs[i] = err; err != nil {
				return
			}
			// Fetched now, in parallel, for assembly.
			if _, err := img.Manifest(); err != nil {
				errs[i] = &RegistryError{Op: "reading base image", Ref: row.Target.Base.Raw + " (" + row.Platform.String() + ")", Err: err}
			} else if _, err := img.ConfigFile(); err != nil {
				errs[i] = &RegistryError{Op: "reading the config of base", Ref: row.Target.Base.Raw + " (" + row.Platform.String() + ")", Err: err}
			} else if row.Target.Base.Kind == targets.BaseRegistry {
				keepBase(c, l.base, img)
			}
			out[i] = &Prepared{Base: l.base, Image: img, Digest: d}
		})
	}
	wg.Wait()
	return out, errs, nil
}

// relabelBase names the target's base key and its line in a LoadBase or
// PlatformImage config error.
func relabelBase(p *targets.Plan, target string, err error) error {
	key := "targets." + target + ".base"
	return atKey(err, p.Config.File, p.Config.Line(key), key, "")
}

// checkLoader refuses a dynamic cgo row whose base lacks the loader the
// binary will ask the kernel for: the image would die with `no such file
// or directory` for a file that is not even the one it names.
func checkLoader(p *targets.Plan, row *targets.Row, facts baseFacts) error {
	want := row.Loader()
	if want == "" || facts.Loaders[want] {
		return nil
	}
	var has []string
	for _, libc := range []targets.Libc{targets.LibcGlibc, targets.LibcMusl} {
		if l := targets.Loader(libc, row.Platform); l != "" && facts.Loaders[l] {
			has = append(has, fmt.Sprintf("the %s loader %s", libc, l))
		}
	}
	what := "no libc loader at all (a static-only base)"
	if len(has) > 0 {
		what = strings.Join(has, " and ")
	}
	fix := "use a base with glibc (distroless/base, debian:*-slim), or build libc: musl for alpine"
	if row.Target.Libc == targets.LibcMusl {
		fix = "use a musl base (alpine), or add link: static to run on any base"
	}
	key := "targets." + row.Target.Name + ".base"
	return p.Config.Errorf(key, fix, "base %s has no %s loader %s for %s; it has %s",
		row.Target.Base.Name(), row.Target.Libc, want, row.Platform, what)
}

// baseFacts is what preflight needs from a base platform image's files:
// a pure function of its digest, kept in the cache between runs so that a
// warm release does not read the base's layers before compiling.
type baseFacts struct {
	Loaders      map[string]bool `json:"loaders"`                 // each libc's loader for the platform: a file in the base?
	Glibc        string          `json:"glibc,omitempty"`         // the base's libc.so.6
	GlibcVersion string          `json:"glibc_version,omitempty"` // its newest GLIBC_ symbol version
}

// inspectBase returns the facts of a base platform image, from c when
// recorded, else from its files (returned too, for verification to reuse).
func inspectBase(c *cache.Cache, files *baseFiles, img v1.Image, d v1.Hash, pl targets.Platform) (baseFacts, *verify.FS, error) {
	var facts baseFacts
	key := c.Key("base-facts/v1", d, pl)
	if d != (v1.Hash{}) && c.Get("base-facts", key, &facts) {
		return facts, nil, nil
	}
	fsys, err := files.get(img, d)
	if err != nil {
		return facts, nil, err
	}
	facts.Loaders = map[string]bool{}
	for _, libc := range []targets.Libc{targets.LibcGlibc, targets.LibcMusl} {
		if l := targets.Loader(libc, pl); l != "" {
			_, e, err := fsys.Resolve(l)
			facts.Loaders[l] = err == nil && e.Type == verify.TypeFile
		}
	}
	facts.Glibc, facts.GlibcVersion = baseGlibc(targets.Loader(targets.LibcGlibc, pl), fsys)
	if d != (v1.Hash{}) {
		c.Put("base-facts", key, facts)
	}
	return facts, fsys, nil
}

// baseFiles flattens each base platform image once per process, for
// preflight and for every row verified on it.
type baseFiles struct {
	mu sync.Mutex
	m  map[v1.Hash]*flattened
}

type flattened struct {
	once sync.Once
	fs   *verify.FS
	err  error
}

// get returns the files of img, whose manifest digest is d. Callers that
// add layers must Clone the result.
func (b *baseFiles) get(img v1.Image, d v1.Hash) (*verify.FS, error) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[v1.Hash]*flattened{}
	}
	f := b.m[d]
	if f == nil {
		f = &flattened{}
		b.m[d] = f
	}
	b.mu.Unlock()
	f.once.Do(func() { f.fs, f.err = verify.Flatten(img, verify.Limits{}) })
	return f.fs, f.err
}

// glibcSkew compares the glibc the toolchain links against with the base's
// and warns when the toolchain's is newer: the binary may need symbol
// versions the base lacks. The binary's actual needs are checked after
// compiling, by verification.
func glibcSkew(row *targets.Row, facts baseFacts, hostCache map[string]string) string {
	baseLibc, baseVer := facts.Glibc, facts.GlibcVersion
	if baseVer == "" || row.Toolchain.LibcSO == "" {
		return ""
	}
	hostVer, ok := hostCache[row.Toolchain.LibcSO]
	if !ok {
		if data, err := os.ReadFile(row.Toolchain.LibcSO); err == nil {
			if e, err := verify.ReadELF(data); err == nil {
				hostVer = verify.MaxGlibcVersion(e.VersionDefs)
			}
		}
		hostCache[row.Toolchain.LibcSO] = hostVer
	}
	if hostVer == "" || verify.CompareGlibc(hostVer, baseVer) <= 0 {
		return ""
	}
	return fmt.Sprintf("the toolchain links against %s (%s) but the base has %s (%s): a binary that uses newer symbols fails at start with `version %s not found`; verification checks the binary's actual needs",
		hostVer, row.Toolchain.LibcSO, baseVer, baseLibc, hostVer)
}

// baseGlibc finds the base's libc.so.6 next to the glibc loader (or in the
// usual library directories) and returns its path and newest GLIBC_ version.
func baseGlibc(loader string, fsys *verify.FS) (string, string) {
	var dirs []string
	if real, _, err := fsys.Resolve(loader); err == nil {
		dirs = append(dirs, path.Dir(real))
	}
	dirs = append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
	for _, d := range dirs {
		p := path.Join(d, "libc.so.6")
		data, err := fsys.ReadFile(p)
		if err != nil {
			continue
		}
		e, err := verify.ReadELF(data)
		if err != nil {
			continue
		}
		if v := verify.MaxGlibcVersion(e.VersionDefs); v != "" {
			return p, v
		}
	}
	return "", ""
}
