package build

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
)

// Prepared is the first stage of a release, and all of `kiln plan`: the
// plan decided from the facts gathered about the machine, the app and the
// bases, with what the later stages take from the gathering (each row's
// base image, the container runtimes) so nothing is fetched twice.
type Prepared struct {
	Plan  *targets.Plan
	Facts *targets.Facts

	bases    map[string]*Base             // by reference as written
	images   []baseImage                  // each row's base image, aligned with Plan.Rows
	runtimes map[string]*ContainerRuntime // by builder_runtime
	files    *baseFiles                   // the bases' files, flattened once
}

// baseImage is one row's base: the platform image and its manifest digest
// (zero for scratch).
type baseImage struct {
	image  v1.Image
	digest v1.Hash
}

// Prepare expands cfg for the selection, gathers at once every fact the
// decision of SPEC §2 needs — the C compilers here, each row's cgo listing,
// each base and what its files hold, the container runtimes and builder
// images — and decides the plan from them (targets.Decide). The error is
// the plan's first refusal (*targets.ConfigError) or a fact that could not
// be gathered (*RegistryError); the Prepared comes with it when the plan
// was decided, nil when the config could not be expanded.
func Prepare(ctx context.Context, cfg *targets.Config, sel targets.Selection, opts Options) (*Prepared, error) {
	return prepare(ctx, cfg, sel, opts, RegistryOptions(opts.Keychain, opts.RegistryTimeout))
}

func prepare(ctx context.Context, cfg *targets.Config, sel targets.Selection, opts Options, registry []remote.Option) (*Prepared, error) {
	p, err := targets.Expand(cfg, sel)
	if err != nil {
		return nil, err
	}
	prep := &Prepared{files: &baseFiles{}}
	f := &targets.Facts{HostArch: runtime.GOARCH, GoMod: targets.HasGoMod(p)}
	var wg sync.WaitGroup
	wg.Go(func() {
		f.Tools = targets.FindTools(p, f.HostArch, nil)
		f.Glibc = toolchainGlibc(targets.GlibcToolchains(p, f.HostArch))
	})
	if f.GoMod { // without one, the decision stops there
		wg.Go(func() { f.Cgo = targets.ListCgo(ctx, p, opts.HostEnv, opts.Cache) })
	}
	wg.Go(func() { f.Bases, prep.bases, prep.images = gatherBases(ctx, p.Rows, registry, opts.Cache, prep.files) })
	wg.Go(func() { f.Runtimes, f.BuilderImages, prep.runtimes = gatherBuilders(ctx, p.Targets) })
	wg.Wait()
	prep.Facts = f
	prep.Plan, err = targets.Decide(p, f)
	return prep, err
}

// gatherBases loads each distinct base and, for each row, its platform
// image (manifest and config, fetched now, in parallel, for assembly) and,
// for a cgo row, what the image's files hold. They are independent round
// trips, all made at once.
func gatherBases(ctx context.Context, rows []targets.Row, registry []remote.Option, c *cache.Cache, files *baseFiles) (map[string]targets.BaseFacts, map[string]*Base, []baseImage) {
	type loaded struct {
		once      sync.Once
		base      *Base
		platforms []string
		err       error
	}
	type platformImage struct {
		once, inspected sync.Once
		img             targets.BaseImage // Files and a files error are added after
		files           *targets.BaseFiles
		filesErr        error
	}
	loads := map[string]*loaded{}
	imgs := map[string]*platformImage{} // by reference and platform
	for _, row := range rows {
		loads[row.Target.Base.Raw] = &loaded{}
		imgs[row.Target.Base.Raw+" "+row.Platform.String()] = &platformImage{}
	}
	// One puller: one connection setup per registry, not one per base.
	if puller, err := remote.NewPuller(registry...); err == nil {
		registry = append(slices.Clone(registry), remote.Reuse(puller))
	}
	images := make([]baseImage, len(rows))
	absent := make([]bool, len(rows))
	var wg sync.WaitGroup
	for i, row := range rows {
		wg.Go(func() {
			ref := row.Target.Base
			l := loads[ref.Raw]
			l.once.Do(func() {
				if l.base, l.err = loadBase(ctx, ref, c, registry...); l.err == nil && ref.Kind != targets.BaseScratch {
					l.platforms = platformNames(l.base)
				}
			})
			if l.err != nil {
				return
			}
			img, d, err := l.base.PlatformImage(row.Platform)
			var me *MissingError
			if errors.As(err, &me) {
				absent[i] = true // the base lacks the platform: Decide refuses the row
				return
			}
			what := ref.Raw + " (" + row.Platform.String() + ")"
			pi := imgs[ref.Raw+" "+row.Platform.String()]
			pi.once.Do(func() {
				pi.img.Digest = digestString(d)
				switch {
				case err != nil:
					pi.img.Err = &RegistryError{Op: "reading base image", Ref: what, Err: err}
				case ref.Kind == targets.BaseScratch:
				default:
					pi.img.Err = fetchBaseImage(c, l.base, img, what)
				}
			})
			if pi.img.Err == nil && row.CGO() && ref.Kind != targets.BaseScratch {
				pi.inspected.Do(func() {
					var ierr error
					if pi.files, ierr = inspectBase(c, files, img, d, row.Platform); ierr != nil {
						pi.filesErr = &RegistryError{Op: "reading the files of base", Ref: what, Err: ierr}
					}
				})
			}
			images[i] = baseImage{image: img, digest: d}
		})
	}
	wg.Wait()
	facts := map[string]targets.BaseFacts{}
	bases := map[string]*Base{}
	for i, row := range rows {
		raw := row.Target.Base.Raw
		l := loads[raw]
		bf, ok := facts[raw]
		if !ok {
			bf = targets.BaseFacts{Err: l.err, Platforms: l.platforms, Images: map[string]targets.BaseImage{}}
			if l.base != nil {
				bf.Digest = digestString(l.base.Digest)
				bases[raw] = l.base
			}
		}
		if pi := imgs[raw+" "+row.Platform.String()]; l.err == nil && !absent[i] {
			img := pi.img
			img.Files = pi.files
			if img.Err == nil {
				img.Err = pi.filesErr
			}
			bf.Images[row.Platform.String()] = img
		}
		facts[raw] = bf
	}
	return facts, bases, images
}

// fetchBaseImage reads a base platform image's manifest and config, which
// assembly needs, and keeps a pinned registry base in the cache.
func fetchBaseImage(c *cache.Cache, b *Base, img v1.Image, what string) error {
	if _, err := img.Manifest(); err != nil {
		return &RegistryError{Op: "reading base image", Ref: what, Err: err}
	}
	if _, err := img.ConfigFile(); err != nil {
		return &RegistryError{Op: "reading the config of base", Ref: what, Err: err}
	}
	if b.Ref.Kind == targets.BaseRegistry {
		keepBase(c, b, img)
	}
	return nil
}

// platformNames lists a base's platforms for a refusal that names them.
func platformNames(b *Base) []string {
	pls, err := b.Platforms()
	if err != nil {
		return nil
	}
	out := make([]string, len(pls))
	for i, pl := range pls {
		out[i] = pl.String()
	}
	return out
}

func digestString(d v1.Hash) string {
	if d == (v1.Hash{}) {
		return ""
	}
	return d.String()
}

// gatherBuilders finds the container runtime of each builder_runtime the
// container-built targets ask for, and whether each builder image is
// present there (pulling it by digest when it is not).
func gatherBuilders(ctx context.Context, ts []*targets.Target) (map[string]targets.RuntimeFacts, map[string]error, map[string]*ContainerRuntime) {
	facts, images, found := map[string]targets.RuntimeFacts{}, map[string]error{}, map[string]*ContainerRuntime{}
	for _, t := range ts {
		b := t.Builder
		if !b.Container {
			continue
		}
		if _, ok := facts[b.Runtime]; !ok {
			rt, err := FindRuntime(ctx, b.Runtime)
			if err != nil {
				facts[b.Runtime] = targets.RuntimeFacts{Err: err}
				continue
			}
			facts[b.Runtime], found[b.Runtime] = targets.RuntimeFacts{Name: rt.Name, Path: rt.Path}, rt
		}
		rt := found[b.Runtime]
		if rt == nil {
			continue
		}
		key := targets.BuilderImageKey(rt.Name, b.Image.Raw)
		if _, ok := images[key]; !ok {
			images[key] = rt.ensureImage(ctx, b.Image.Raw)
		}
	}
	return facts, images, found
}
