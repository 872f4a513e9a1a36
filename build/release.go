// Package build owns the release pipeline, the doing side of kiln, and
// nothing else:
//
//	prepare ─▶ compile ─▶ assemble ─▶ verify ─▶ publish ─▶ sign ─▶ tag ─▶ Result
//	(facts, decided plan)   (per row, in parallel)   (gate: all rows passed)
//
// Each stage takes the values the one before it produced and returns its
// own result; a row's status in the Result is computed from those at the
// end (result.go), never patched. Prepare (prepare.go) gathers the facts
// and hands them to targets.Decide, which makes every decision of SPEC §2;
// build only carries the plan out: `go build` per row (compile.go, on the
// host or in a builder container, container.go), image assembly with
// go-containerregistry (assemble.go), the verification gate (verify.go),
// publishing to an OCI layout or a registry (publish.go), signing
// (signing.go) and tags, and the fan-in of a split release (merge.go).
// Base images are loaded by reference here (base.go) for the other
// packages too: kiln lock resolves pins and anyimage verifies any image
// with them.
//
// It never prints on its own: progress goes to Options.Progress, results
// are returned as a Result for the caller to render. Its errors are its
// own types (errors.go); the CLI maps them to exit codes.
package build

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// Options control a release.
type Options struct {
	Push      bool           // push to image.repository instead of writing a layout
	NoTag     bool           // push by digest only: a split job whose rows --merge will tag
	Jobs      int            // parallel builds; 0 means 1
	HostEnv   []string       // the caller's environment; builds see only an allowed part of it
	Keychain  authn.Keychain // registry credentials; nil means authn.DefaultKeychain
	Progress  io.Writer      // one line per stage per row; nil discards
	UserAgent string
	Cache     *cache.Cache // kiln's own result cache; nil disables it

	// RegistryTimeout bounds the wait for each registry response; zero
	// means DefaultRegistryTimeout.
	RegistryTimeout time.Duration
}

// Release runs the pipeline of SPEC §1 for the rows cfg and sel select:
// prepare, compile, assemble, verify, publish, sign, tag. It returns a
// Result even when it fails, recording how far each row got, and writes it
// to <output>/release.json once compiling started. Nothing is published
// unless every row passed, and no tag is written unless every target was
// pushed and signed.
func Release(ctx context.Context, cfg *targets.Config, sel targets.Selection, opts Options) (*Result, error) {
	r := newRelease(opts)
	start := time.Now()
	res, plan, err := r.run(ctx, cfg, sel)
	res.Timings.add("total", time.Since(start))
	res.Passed = err == nil
	if err != nil {
		res.Error = err.Error()
	}
	// A release that stopped before compiling writes nothing: exit 2 means
	// nothing was built or written.
	if plan == nil {
		return res, err
	}
	if werr := res.WriteJSON(filepath.Join(plan.Output, "release.json")); werr != nil && err == nil {
		err = &RegistryError{Op: "writing release.json", Err: werr}
	}
	return res, err
}

type release struct {
	opts     Options
	registry []remote.Option // credentials and transport, one for the whole release
	mu       sync.Mutex      // guards progress writes
}

func newRelease(opts Options) *release {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	return &release{opts: opts, registry: RegistryOptions(opts.Keychain, opts.RegistryTimeout)}
}

// progress writes one line for a stage of a row (nil: the whole release).
func (r *release) progress(stage string, row *targets.Row, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := "-"
	if row != nil {
		id = row.Target.Name + " " + row.Platform.String()
	}
	fmt.Fprintf(r.opts.Progress, "kiln: %-8s %-24s %s\n", stage, id, fmt.Sprintf(format, args...))
}

// run is the pipeline. It returns the plan once compiling started (then
// release.json records the outcome), nil before.
func (r *release) run(ctx context.Context, cfg *targets.Config, sel targets.Selection) (*Result, *targets.Plan, error) {
	res := newResult(cfg.App.Name)
	repo, err := r.repository(cfg)
	if err != nil {
		return res, nil, err
	}
	pre, err := r.preStage(ctx, cfg, sel, res.Timings)
	if pre.prep != nil && pre.prep.Plan != nil {
		res.Rows = notBuilt(pre.prep.Plan)
	}
	if err != nil {
		return res, nil, err
	}
	prep := pre.prep
	plan := prep.Plan
	if r.opts.Push {
		res.Repository = repo.String()
	} else {
		res.Layout = filepath.Join(plan.Output, "oci")
	}
	for i := range plan.Rows {
		for _, w := range plan.Rows[i].Warnings {
			r.progress("plan", &plan.Rows[i], "warning: %s", w)
		}
	}

	builds, err := r.buildRows(ctx, prep, pre.spec)
	var pub published
	if err == nil {
		rows := make([]*pubRow, len(builds))
		for i, b := range builds {
			rows[i] = b.pubRow()
		}
		baseDigest := func(t *targets.Target) v1.Hash { return prep.bases[t.Base.Raw].Digest }
		pub, err = r.publishStages(ctx, plan, rows, baseDigest, pre.spec, pre.signer, repo, res.Timings)
	}
	res.Rows = rowResults(builds, pub, err)
	return res, plan, err
}

// repository is where --push pushes; the zero value when it does not.
func (r *release) repository(cfg *targets.Config) (name.Repository, error) {
	if !r.opts.Push {
		return name.Repository{}, nil
	}
	if cfg.Image.Repository == "" {
		return name.Repository{}, cfg.Errorf("image.repository", "set image.repository (or KILN_IMAGE_REPOSITORY), or write an OCI layout instead",
			"publishing to a registry needs a repository to push to")
	}
	repo, err := name.NewRepository(cfg.Image.Repository)
	if err != nil {
		return name.Repository{}, cfg.Errorf("image.repository", "", "%v", err)
	}
	return repo, nil
}

// preResult is what the stage before compiling produced.
type preResult struct {
	prep   *Prepared
	spec   ImageSpec
	signer *sign.Signer // nil: nothing to sign here
}

// preStage runs everything before compiling at once: Prepare (the facts
// and the decided plan: SPEC §1 refuses impossible combinations before
// anything is compiled), the image spec (SOURCE_DATE_EPOCH, VCS facts) and
// the signing key, loaded (and decrypted: scrypt takes a few hundred
// milliseconds) meanwhile, so a wrong password or a missing key stops the
// release before any build. Split jobs (--no-tag) leave signing to --merge.
// Each part runs to its end and the first problem in this order is
// reported, whichever finished first: the same broken config gives the
// same error (and exit code) every time. The base images read lazily
// through the context they were fetched with, and a signer may keep its
// own, so all take the release's.
func (r *release) preStage(ctx context.Context, cfg *targets.Config, sel targets.Selection, timings Timings) (preResult, error) {
	var (
		pre      preResult
		errs     [3]error
		prepTime time.Duration
		wg       sync.WaitGroup
	)
	start := time.Now()
	wg.Go(func() { pre.spec, errs[0] = imageSpec(ctx, filepath.Dir(cfg.File), cfg, r.opts.HostEnv) })
	wg.Go(func() {
		pre.prep, errs[1] = prepare(ctx, cfg, sel, r.opts, r.registry)
		prepTime = time.Since(start)
	})
	if !r.opts.NoTag {
		wg.Go(func() { pre.signer, errs[2] = newSigner(ctx, cfg.Sign, r.registry) })
	}
	wg.Wait()
	timings.add("plan", time.Since(start))
	timings.add("base", prepTime)
	for _, err := range errs {
		if err != nil {
			return pre, err
		}
	}
	return pre, nil
}

// imageSpec gathers what every image shares: config fields from the file,
// the creation time from SOURCE_DATE_EPOCH and the VCS source and revision
// of the module at dir (resolved against the config file's directory).
func imageSpec(ctx context.Context, configDir string, cfg *targets.Config, host []string) (ImageSpec, error) {
	img := cfg.Image
	spec := ImageSpec{Entrypoint: img.Entrypoint, User: img.User, Workdir: img.Workdir, Env: img.Env, Labels: img.Labels, Created: time.Unix(0, 0).UTC()}
	if s := lookupEnv(host, "SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return spec, &InputError{Input: "SOURCE_DATE_EPOCH", Problem: fmt.Sprintf("%q is not a number of seconds since 1970", s),
				Fix: "set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)"}
		}
		spec.Created = time.Unix(sec, 0).UTC()
	}
	dir := cfg.App.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(configDir, dir)
	}
	spec.Revision = git(ctx, dir, "rev-parse", "HEAD")
	spec.Source = sourceURL(git(ctx, dir, "config", "--get", "remote.origin.url"))
	// A label the user set wins, in the annotations too: one answer per image.
	if v, ok := img.Labels[AnnotationSource]; ok {
		spec.Source = v
	}
	if v, ok := img.Labels[AnnotationRevision]; ok {
		spec.Revision = v
	}
	return spec, nil
}

// rowBuild is what compiling, assembling and verifying did with one row.
type rowBuild struct {
	row     targets.Row
	base    baseImage
	builder string // host, or "<runtime> <builder image>"

	stopped   bool  // not built: another build failed first
	err       error // compiling, assembling or verifying failed
	image     v1.Image
	digest    v1.Hash
	buildInfo *buildinfo.BuildInfo // of the built binary, for the SBOM
	report    *verify.Report
	cached    bool // the report came from the cache
	timings   Timings
}

// buildRows compiles, assembles and verifies every row, up to Jobs
// compiles at a time. The first compile or assembly failure cancels the
// builds still running. A failing image does not: the others are still
// verified so the report names every problem. The error is the gate: the
// first failure, or a *VerifyError naming every failed check.
func (r *release) buildRows(ctx context.Context, prep *Prepared, spec ImageSpec) ([]*rowBuild, error) {
	plan := prep.Plan
	builds := make([]*rowBuild, len(plan.Rows))
	for i, row := range plan.Rows {
		b := &rowBuild{row: row, base: prep.images[i], builder: "host", timings: Timings{}}
		if rt := prep.runtimes[row.Target.Builder.Runtime]; row.Target.Builder.Container && rt != nil {
			b.builder = rt.Name + " " + row.Target.Builder.Image.Raw
		}
		builds[i] = b
	}
	tmp, err := os.MkdirTemp("", "kiln-build-")
	if err != nil {
		return builds, fmt.Errorf("creating a build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	var runner *verify.Runner
	for _, row := range plan.Rows {
		if row.Target.Policy.Run { // finding qemu costs a PATH search per architecture
			runner = verify.NewRunner()
			break
		}
	}
	// Jobs bounds the compiles only: a row's assembly and verification run
	// outside the limit, so the next compile starts as soon as one ends.
	g, gctx := errgroup.WithContext(ctx)
	compiling := make(chan struct{}, r.opts.Jobs)
	for _, b := range builds {
		g.Go(func() error {
			select {
			case compiling <- struct{}{}:
			case <-gctx.Done():
				b.stopped = true
				return nil
			}
			bin, err := r.compile(gctx, prep, b, tmp)
			<-compiling
			if err != nil {
				if gctx.Err() != nil && ctx.Err() == nil {
					b.stopped = true
					return nil
				}
				b.err = err
				return err
			}
			if err := r.assemble(b, bin, spec); err != nil {
				b.err = err
				return err
			}
			if err := r.verifyRow(gctx, prep, b, runner); err != nil {
				b.err = err
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return builds, err
	}
	var failures []string
	for _, b := range builds {
		for _, c := range b.report.Failures() {
			failures = append(failures, fmt.Sprintf("%s %s: %s: %s", b.row.Target.Name, b.row.Platform, c.ID, c.Evidence))
		}
	}
	if len(failures) > 0 {
		return builds, &VerifyError{Failures: failures}
	}
	return builds, nil
}

// compile runs the row's go build, on the host or in its builder image.
func (r *release) compile(ctx context.Context, prep *Prepared, b *rowBuild, tmp string) (string, error) {
	row := &b.row
	r.progress("compile", row, "go build (CGO_ENABLED=%s)", map[bool]string{true: "1", false: "0"}[row.CGO()])
	start := time.Now()
	var bin string
	var err error
	if row.Target.Builder.Container {
		bin, err = compileInContainer(ctx, r.opts.Cache, prep.Plan, *row, prep.runtimes[row.Target.Builder.Runtime], tmp, r.opts.HostEnv)
	} else {
		bin, err = compile(ctx, r.opts.Cache, prep.Plan, *row, tmp, r.opts.HostEnv)
	}
	b.timings.add("compile", time.Since(start))
	if err != nil {
		if ctx.Err() == nil {
			r.progress("compile", row, "FAILED")
		}
		return "", err
	}
	r.progress("compile", row, "ok (%.1fs)", time.Since(start).Seconds())
	return bin, nil
}

// assemble layers the row's binary at bin on its base.
func (r *release) assemble(b *rowBuild, bin string, spec ImageSpec) error {
	start := time.Now()
	defer func() { b.timings.add("assemble", time.Since(start)) }()
	mt, err := layerMediaType(b.base.image)
	if err != nil {
		return fmt.Errorf("assembling %s: %w", b.row.ID(), err)
	}
	layer, err := binaryLayerFile(r.opts.Cache, bin, spec.Entrypoint, spec.Created, mt)
	if err != nil {
		return fmt.Errorf("assembling %s: writing the binary layer: %w", b.row.ID(), err)
	}
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		b.buildInfo = bi
	}
	img, err := assembleLayer(b.base.image, b.row.Target.Base, b.base.digest, layer, spec)
	var d v1.Hash
	if err == nil {
		d, err = img.Digest() // computes the layer digest once, here in parallel
	}
	if err != nil {
		return fmt.Errorf("assembling %s: %w", b.row.ID(), err)
	}
	b.image, b.digest = img, d
	r.progress("assemble", &b.row, "%s", d)
	return nil
}

// pubRow is the row as the publishing stages take it.
func (b *rowBuild) pubRow() *pubRow {
	return &pubRow{row: b.row, image: b.image, digest: b.digest.String(), baseDigest: digestString(b.base.digest), buildInfo: b.buildInfo, checks: b.report.Checks}
}

// notBuilt are the result rows of a plan before anything was built.
func notBuilt(p *targets.Plan) []*RowResult {
	rows := make([]*RowResult, len(p.Rows))
	for i, row := range p.Rows {
		rows[i] = newRowResult(row, "host")
		rows[i].Status = StatusNotBuilt
	}
	return rows
}

// published is what the publishing stages did, per row ID.
type published struct {
	started bool                // every row passed and publishing began
	done    bool                // every target was published
	indexes map[string]string   // the index digest of each row's target, when it has several platforms
	refs    map[string]string   // each row's target by digest: repo@sha256:… or oci:<layout>@sha256:…
	pushed  bool                // published to a registry
	signed  map[string]bool     // rows whose image was signed, with its attestations
	tags    map[string][]string // each row's target's tags, once all were written
	publish time.Duration       // how long publishing took, for each row's timings
}

// publishStages publishes verified rows: each target's image or index, then
// signs them and writes the tags, for Release and Merge alike. The result
// says how far it got even when it fails.
func (r *release) publishStages(ctx context.Context, plan *targets.Plan, rows []*pubRow, baseDigest func(*targets.Target) v1.Hash, spec ImageSpec, signer *sign.Signer, repo name.Repository, timings Timings) (published, error) {
	pub := published{indexes: map[string]string{}, refs: map[string]string{}, signed: map[string]bool{}, tags: map[string][]string{}}
	arts, err := artifacts(plan, rows, baseDigest, spec)
	if err != nil {
		return pub, err
	}
	for _, a := range arts {
		if a.index != nil {
			d, _ := a.digest()
			for _, pr := range a.rows {
				pub.indexes[pr.row.ID()] = d.String()
			}
		}
	}
	remoteOpts := append(slices.Clone(r.registry), remote.WithContext(ctx), remote.WithJobs(max(r.opts.Jobs, 4)))
	if r.opts.UserAgent != "" {
		remoteOpts = append(remoteOpts, remote.WithUserAgent(r.opts.UserAgent))
	}
	// One pusher for the push and the tags: one connection setup.
	if pusher, err := remote.NewPusher(remoteOpts...); err == nil {
		remoteOpts = append(remoteOpts, remote.Reuse(pusher))
	}
	start := time.Now()
	pub.started = true
	layout := filepath.Join(plan.Output, "oci")
	if r.opts.Push {
		r.progress("publish", nil, "pushing %d target(s) to %s by digest", len(arts), repo)
		err = push(ctx, repo, arts, remoteOpts)
	} else {
		r.progress("publish", nil, "writing %d target(s) to the OCI layout %s", len(arts), layout)
		if err = writeLayout(layout, arts); err != nil {
			err = &RegistryError{Op: "writing the OCI layout", Ref: layout, Err: err}
		}
	}
	if err != nil {
		return pub, err
	}
	pub.done, pub.pushed, pub.publish = true, r.opts.Push, time.Since(start)
	timings.add("publish", pub.publish)
	for _, a := range arts {
		d, _ := a.digest()
		ref := "oci:" + layout + "@" + d.String()
		if r.opts.Push {
			ref = repo.Digest(d.String()).String()
		}
		for _, pr := range a.rows {
			pub.refs[pr.row.ID()] = ref
		}
	}
	if signer != nil {
		start := time.Now()
		s := signing{release: r, signer: signer, plan: plan, spec: spec, signed: pub.signed}
		if r.opts.Push {
			err = s.pushed(ctx, repo, arts)
		} else {
			err = s.layouts(ctx, arts)
		}
		if err != nil {
			return pub, err
		}
		timings.add("sign", time.Since(start))
	}
	if r.opts.Push && !r.opts.NoTag {
		start := time.Now()
		if err := tag(ctx, repo, arts, remoteOpts); err != nil {
			return pub, err
		}
		for _, a := range arts {
			r.progress("tag", nil, "%s: %s", a.target, strings.Join(a.tags, ", "))
			for _, pr := range a.rows {
				pub.tags[pr.row.ID()] = a.tags
			}
		}
		timings.add("tag", time.Since(start))
	}
	return pub, nil
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// git returns the trimmed output of a git command in dir, or "" when git or
// the repository is not there: source and revision are recorded when known.
func git(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
