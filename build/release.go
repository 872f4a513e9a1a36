// Package build owns the doing side of kiln: it runs `go build` for each row
// of a targets.Plan, assembles images with go-containerregistry (no Docker
// daemon), and publishes them to an OCI image layout or a registry.
//
// It never prints on its own: progress goes to Options.Progress, results are
// returned as a Result for the caller to render.
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

// Release runs the pipeline of SPEC §1 for every row of the plan: resolve
// bases, compile, assemble, publish, tag. It returns a Result even when it
// fails, recording how far each row got, and writes it to
// <output>/release.json. Nothing is published unless every row built, and no
// tag is written unless every target was pushed.
func Release(ctx context.Context, p *targets.Plan, opts Options) (*Result, error) {
	r := newRelease(p, opts)
	if r.opts.Jobs < 1 {
		r.opts.Jobs = 1
	}
	for _, row := range p.Rows {
		if row.Target.Policy.Run { // finding qemu costs a PATH search per architecture
			r.runner = verify.NewRunner()
			break
		}
	}
	start := time.Now()
	err := r.run(ctx)
	r.res.Timings.add("total", time.Since(start))
	r.res.Passed = err == nil
	if err != nil {
		r.res.Error = err.Error()
		for _, rs := range r.rows {
			switch {
			case rs.res.Status == StatusVerified && r.publishing:
				rs.res.Status, rs.res.Error = StatusFailed, err.Error()
			case rs.res.Status == StatusVerified:
				rs.res.Status, rs.res.Error = StatusNotPublished, "not published: "+firstLineOf(err.Error())
			case rs.res.ImageDigest != "" && rs.res.Status == StatusNotBuilt: // built, then stopped by a later stage
				rs.res.Status, rs.res.Error = StatusFailed, err.Error()
			}
		}
	}
	// A release that failed before compiling (config, bases) writes nothing:
	// exit 2 means nothing was built or written.
	if !r.compiled {
		return r.res, err
	}
	if werr := r.res.WriteJSON(filepath.Join(p.Output, "release.json")); werr != nil && err == nil {
		err = &RegistryError{Op: "writing release.json", Err: werr}
	}
	return r.res, err
}

type release struct {
	plan     *targets.Plan
	opts     Options
	res      *Result
	mu       sync.Mutex      // guards progress writes
	registry []remote.Option // credentials and transport, one for the whole release

	rows       []*rowState
	compiled   bool // compiling started: from here on release.json records the outcome
	runner     *verify.Runner
	publishing bool // every row passed; publishing started
	signer     *sign.Signer
	spec       ImageSpec
	files      baseFiles // each base's files, flattened once
}

type rowState struct {
	row        targets.Row
	res        *RowResult
	base       v1.Image
	baseDigest v1.Hash
	image      v1.Image
	buildInfo  *buildinfo.BuildInfo // of the built binary, for the SBOM
	runtime    *containerRuntime    // builder: container
}

func (r *release) progress(stage string, row *rowState, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := "-"
	if row != nil {
		id = row.row.Target.Name + " " + row.row.Platform.String()
	}
	fmt.Fprintf(r.opts.Progress, "kiln: %-8s %-24s %s\n", stage, id, fmt.Sprintf(format, args...))
}

func (r *release) run(ctx context.Context) error {
	cfg := r.plan.Config
	var repo name.Repository
	if r.opts.Push {
		if cfg.Image.Repository == "" {
			return &targets.ConfigError{File: cfg.File, Key: "image.repository", Problem: "--push needs a registry to push to",
				Fix: "set image.repository (or KILN_IMAGE_REPOSITORY), or drop --push to write an OCI layout"}
		}
		var err error
		if repo, err = name.NewRepository(cfg.Image.Repository); err != nil {
			return &targets.ConfigError{File: cfg.File, Key: "image.repository", Problem: err.Error()}
		}
		r.res.Repository = repo.String()
	} else {
		r.res.Layout = filepath.Join(r.plan.Output, "oci")
	}
	// Every row is in the result from the start, so a release that stops
	// early says how far each got.
	for _, row := range r.plan.Rows {
		rs := &rowState{row: row, res: &RowResult{
			Target: row.Target.Name, Platform: row.Platform.String(), Libc: string(row.Target.Libc),
			CGOEnabled: row.CGO(), BuildTags: row.Target.Tags, Base: BaseInfo{Name: row.Target.Base.Name()},
			Status: StatusNotBuilt, Timings: Timings{}, Tags: []string{}, Builder: "host",
		}}
		r.rows = append(r.rows, rs)
		r.res.Rows = append(r.res.Rows, rs.res)
	}
	// Everything before compiling is independent and runs at once: the cgo
	// analysis (go list), the bases and what each row needs from them, and
	// the VCS facts. SPEC §1: impossible combinations are refused before
	// anything is compiled.
	start := time.Now()
	rows := slices.Clone(r.plan.Rows) // Analyze writes to the plan's rows meanwhile
	// Each stage runs to its end and the first problem in this order is
	// reported, whichever finished first: the same broken config gives the
	// same error (and exit code) every time. Contexts: the base images read
	// lazily through the one they were fetched with, and a signer may keep
	// its own, so all take the release's.
	var (
		errs     [4]error
		prepared []*Prepared
		baseTime time.Duration
		pre      sync.WaitGroup
	)
	pre.Go(func() { errs[0] = r.imageSpec(ctx) })
	pre.Go(func() { errs[1] = r.plan.Analyze(ctx, r.opts.HostEnv, r.opts.Cache) })
	pre.Go(func() {
		prepared, errs[2] = preflight(ctx, r.plan, rows, r.registry, r.opts.Cache, &r.files)
		baseTime = time.Since(start)
	})
	// Split jobs (--no-tag) leave signing to --merge. The key is loaded
	// (and decrypted: scrypt takes a few hundred milliseconds) meanwhile; a
	// wrong password or a missing key still stops the release before any
	// build.
	if !r.opts.NoTag {
		pre.Go(func() { r.signer, errs[3] = newSigner(ctx, cfg.Sign, r.registry) })
	}
	pre.Wait()
	r.res.Timings.add("plan", time.Since(start))
	r.res.Timings.add("base", baseTime)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	r.applyBases(prepared)
	if err := r.buildAll(ctx); err != nil {
		return err
	}
	bases := map[string]*Base{}
	for i, row := range r.plan.Rows {
		bases[row.Target.Base.Raw] = prepared[i].Base
	}
	arts, err := r.artifacts(bases)
	if err != nil {
		return err
	}

	remoteOpts := append(slices.Clone(r.registry), remote.WithContext(ctx), remote.WithJobs(max(r.opts.Jobs, 4)))
	if r.opts.UserAgent != "" {
		remoteOpts = append(remoteOpts, remote.WithUserAgent(r.opts.UserAgent))
	}
	// One pusher for the push and the tags: one connection setup.
	if pusher, err := remote.NewPusher(remoteOpts...); err == nil {
		remoteOpts = append(remoteOpts, remote.Reuse(pusher))
	}
	start = time.Now()
	r.publishing = true
	if r.opts.Push {
		r.progress("publish", nil, "pushing %d target(s) to %s by digest", len(arts), repo)
		if err := push(ctx, repo, arts, remoteOpts); err != nil {
			return err
		}
	} else {
		r.progress("publish", nil, "writing %d target(s) to the OCI layout %s", len(arts), r.res.Layout)
		if err := writeLayout(r.res.Layout, arts); err != nil {
			return &RegistryError{Op: "writing the OCI layout", Ref: r.res.Layout, Err: err}
		}
	}
	r.recordPublished(arts, repo, time.Since(start))
	if r.signer != nil {
		if r.opts.Push {
			err = r.signPushed(ctx, repo, arts)
		} else {
			err = r.signLayouts(ctx, arts)
		}
		if err != nil {
			return err
		}
	}

	if r.opts.Push && !r.opts.NoTag {
		return r.tag(ctx, repo, arts, remoteOpts)
	}
	return nil
}

// newRelease is what Release and Merge share.
func newRelease(p *targets.Plan, opts Options) *release {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	return &release{plan: p, opts: opts, res: &Result{App: p.Config.App.Name, Timings: Timings{}},
		registry: registryOptions(opts.Keychain, opts.RegistryTimeout)}
}

// applyBases gives each row what preflight found: its base and warnings.
func (r *release) applyBases(prepared []*Prepared) {
	for i, rs := range r.rows {
		prep := prepared[i]
		rs.row = r.plan.Rows[i] // with what Analyze found
		rs.row.Warnings = append(rs.row.Warnings, prep.warnings...)
		rs.base, rs.baseDigest, rs.runtime = prep.Image, prep.Digest, prep.runtime
		rs.res.Warnings = rs.row.Warnings
		if prep.runtime != nil {
			rs.res.Builder = prep.runtime.name + " " + rs.row.Target.Builder.Image.Raw
		}
		if prep.Digest != (v1.Hash{}) {
			rs.res.Base.Digest = prep.Digest.String()
		}
		for _, w := range rs.row.Warnings {
			r.progress("plan", rs, "warning: %s", w)
		}
	}
}

// tag writes every artifact's tags, after every target was pushed, and
// records them.
func (r *release) tag(ctx context.Context, repo name.Repository, arts []*artifact, remoteOpts []remote.Option) error {
	start := time.Now()
	if err := tag(ctx, repo, arts, remoteOpts); err != nil {
		return err
	}
	for _, a := range arts {
		r.progress("tag", nil, "%s: %s", a.target, strings.Join(a.tags, ", "))
		for _, rs := range a.rows {
			rs.res.Tags = a.tags
		}
	}
	r.res.Timings.add("tag", time.Since(start))
	return nil
}

// imageSpec gathers what every image shares: config fields from the file,
// the creation time from SOURCE_DATE_EPOCH and the VCS source and revision.
func (r *release) imageSpec(ctx context.Context) error {
	img := r.plan.Config.Image
	spec := ImageSpec{Entrypoint: img.Entrypoint, User: img.User, Workdir: img.Workdir, Env: img.Env, Labels: img.Labels, Created: time.Unix(0, 0).UTC()}
	if s := lookupEnv(r.opts.HostEnv, "SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return &targets.ConfigError{Key: "SOURCE_DATE_EPOCH", Problem: fmt.Sprintf("%q is not a number of seconds since 1970", s),
				Fix: "set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)"}
		}
		spec.Created = time.Unix(sec, 0).UTC()
	}
	spec.Revision = git(ctx, r.plan.Dir, "rev-parse", "HEAD")
	spec.Source = sanitizeRemote(git(ctx, r.plan.Dir, "config", "--get", "remote.origin.url"))
	r.spec = spec
	return nil
}

// buildAll compiles and assembles every row, up to Jobs at a time. The
// first failure cancels the builds still running.
func (r *release) buildAll(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "kiln-build-")
	if err != nil {
		return fmt.Errorf("creating a build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	host := r.opts.HostEnv
	r.compiled = true
	// Jobs bounds the compiles only: a row's assembly and verification run
	// outside the limit, so the next compile starts as soon as one ends.
	g, gctx := errgroup.WithContext(ctx)
	compiling := make(chan struct{}, r.opts.Jobs)
	for _, rs := range r.rows {
		g.Go(func() error {
			select {
			case compiling <- struct{}{}:
			case <-gctx.Done():
				rs.res.Status, rs.res.Error = StatusNotBuilt, "stopped: another build failed"
				return nil
			}
			r.progress("compile", rs, "go build (CGO_ENABLED=%s)", map[bool]string{true: "1", false: "0"}[rs.row.CGO()])
			start := time.Now()
			var bin string
			var err error
			if rs.row.Target.Builder.Container {
				bin, err = compileInContainer(gctx, r.opts.Cache, r.plan, rs.row, rs.runtime, tmp, host)
			} else {
				bin, err = compile(gctx, r.opts.Cache, r.plan, rs.row, tmp, host)
			}
			<-compiling
			rs.res.Timings.add("compile", time.Since(start))
			if err != nil {
				rs.res.Status = StatusFailed
				if gctx.Err() != nil && ctx.Err() == nil {
					rs.res.Status, rs.res.Error = StatusNotBuilt, "stopped: another build failed"
					return nil
				}
				rs.res.Error = err.Error()
				r.progress("compile", rs, "FAILED")
				return err
			}
			r.progress("compile", rs, "ok (%.1fs)", time.Since(start).Seconds())
			start = time.Now()
			rs.image, err = r.assemble(rs, bin)
			var d v1.Hash
			if err == nil {
				d, err = rs.image.Digest() // computes the layer digest once, here in parallel
			}
			rs.res.Timings.add("assemble", time.Since(start))
			if err != nil {
				rs.res.Status, rs.res.Error = StatusFailed, err.Error()
				return fmt.Errorf("assembling %s: %w", rs.row.ID(), err)
			}
			rs.res.ImageDigest = d.String()
			r.progress("assemble", rs, "%s", d)
			return r.verifyRow(gctx, rs)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var failures []string
	for _, rs := range r.rows {
		if rs.res.Status == StatusFailed {
			for _, c := range rs.res.Checks {
				if c.Status == verify.Fail {
					failures = append(failures, fmt.Sprintf("%s %s: %s: %s", rs.row.Target.Name, rs.row.Platform, c.ID, c.Evidence))
				}
			}
		}
	}
	if len(failures) > 0 {
		return &VerifyError{Failures: failures}
	}
	return nil
}

// assemble layers the row's binary at bin on its base.
func (r *release) assemble(rs *rowState, bin string) (v1.Image, error) {
	mt, err := layerMediaType(rs.base)
	if err != nil {
		return nil, err
	}
	layer, err := binaryLayerFile(r.opts.Cache, bin, r.spec.Entrypoint, r.spec.Created, mt)
	if err != nil {
		return nil, fmt.Errorf("writing the binary layer: %w", err)
	}
	if bi, err := buildinfo.ReadFile(bin); err == nil {
		rs.buildInfo, rs.res.BuildInfo = bi, bi.String()
	}
	return assembleLayer(rs.base, rs.row.Target.Base, rs.baseDigest, layer, r.spec)
}

// verifyRow runs the checks of SPEC §4 on a row's image. A failing image
// marks its row failed; the release goes on verifying the others so the
// report names every problem, and then publishes nothing.
func (r *release) verifyRow(ctx context.Context, rs *rowState) error {
	start := time.Now()
	t := rs.row.Target
	in := verify.Input{
		Image: rs.image, Ref: rs.row.ID(), Platform: rs.row.Platform,
		Libc: t.Libc, Link: t.Link, Policy: t.Policy, Runner: r.runner,
		Scratch: t.Base.Kind == targets.BaseScratch,
	}
	if !in.Scratch {
		in.BaseName, in.BaseDigest = t.Base.Name(), rs.baseDigest.String()
	}
	rep, cached, err := r.verifyImage(ctx, in, rs)
	rs.res.Timings.add("verify", time.Since(start))
	rs.res.VerifyCached = cached
	if err != nil {
		rs.res.Status, rs.res.Error = StatusFailed, err.Error()
		return fmt.Errorf("verifying %s: %w", rs.row.ID(), err)
	}
	rs.res.Checks, rs.res.DNSLoad = rep.Checks, rep.DNSLoad
	if !rep.Passed {
		rs.res.Status = StatusFailed
		fails := rep.Failures()
		rs.res.Error = fmt.Sprintf("verification failed: %s: %s", fails[0].ID, fails[0].Evidence)
		r.progress("verify", rs, "FAILED %s: %s", fails[0].ID, fails[0].Evidence)
		return nil
	}
	skipped := 0
	for _, c := range rep.Checks {
		if c.Status == verify.Skip {
			skipped++
		}
	}
	rs.res.Status = StatusVerified
	how := ""
	if cached {
		how = ", cached"
	}
	r.progress("verify", rs, "passed (%d checks, %d skipped%s)", len(rep.Checks), skipped, how)
	return nil
}

// verifyImage verifies a row's image. The static checks are a pure
// function of the image (named by its digest), what the target expects of
// it and kiln itself, so when run.* is off a report of the same inputs from
// an earlier run is the answer, as go test reuses a passing test's result;
// run.* is never cached. A base's files are flattened once per release and
// only the binary layer is added for each row.
func (r *release) verifyImage(ctx context.Context, in verify.Input, rs *rowState) (*verify.Report, bool, error) {
	c := r.opts.Cache
	key := ""
	if !in.Policy.Run {
		keyed := in
		keyed.Image, keyed.Runner = nil, nil
		key = c.Key("verify/v1", rs.res.ImageDigest, keyed)
		var rep verify.Report
		if c.Get("verify", key, &rep) {
			return &rep, true, nil
		}
	}
	if !in.Scratch {
		base, err := r.files.get(rs.base, rs.baseDigest)
		if err != nil {
			return nil, false, fmt.Errorf("reading the files of base %s: %w", in.BaseName, err)
		}
		layers, err := rs.image.Layers()
		if err != nil {
			return nil, false, err
		}
		in.FS = base.Clone()
		if err := in.FS.AddLayer(layers[len(layers)-1]); err != nil {
			return nil, false, err
		}
	}
	rep, err := verify.Image(ctx, in)
	if err == nil && rep.Passed && key != "" {
		c.Put("verify", key, rep)
	}
	return rep, false, err
}

// artifacts groups rows by target: one image, or an index when the target
// has several platforms.
func (r *release) artifacts(bases map[string]*Base) ([]*artifact, error) {
	var arts []*artifact
	for _, t := range r.plan.Targets {
		var rows []*rowState
		for _, rs := range r.rows {
			if rs.row.Target == t {
				rows = append(rows, rs)
			}
		}
		a := &artifact{target: t.Name, rows: rows}
		for _, tg := range r.plan.Config.Image.Tags {
			a.tags = append(a.tags, tg+"-"+t.Name)
		}
		if t.Default {
			a.tags = append(a.tags, r.plan.Config.Image.Tags...)
		}
		if len(rows) == 1 {
			a.image = rows[0].image
		} else {
			idx, err := Index(imagesOf(rows), platformsOf(rows), t.Base, bases[t.Base.Raw].Digest, r.spec)
			var d v1.Hash
			if err == nil {
				d, err = idx.Digest()
			}
			if err != nil {
				return nil, fmt.Errorf("building the index of %s: %w", t.Name, err)
			}
			a.index, a.perPlatform = idx, map[string]v1.Image{}
			for _, rs := range rows {
				rs.res.IndexDigest = d.String()
				a.perPlatform[rs.row.ID()] = rs.image
			}
		}
		arts = append(arts, a)
	}
	return arts, nil
}

func imagesOf(rows []*rowState) []v1.Image {
	out := make([]v1.Image, len(rows))
	for i, rs := range rows {
		out[i] = rs.image
	}
	return out
}

func platformsOf(rows []*rowState) []targets.Platform {
	out := make([]targets.Platform, len(rows))
	for i, rs := range rows {
		out[i] = rs.row.Platform
	}
	return out
}

func (r *release) recordPublished(arts []*artifact, repo name.Repository, d time.Duration) {
	r.res.Timings.add("publish", d)
	for _, a := range arts {
		dg, _ := a.digest()
		for _, rs := range a.rows {
			rs.res.Status = StatusOK
			rs.res.Timings.add("publish", d)
			if r.opts.Push {
				rs.res.Ref = repo.Digest(dg.String()).String()
				rs.res.Pushed = true
			} else {
				rs.res.Ref = "oci:" + r.res.Layout + "@" + dg.String()
			}
		}
	}
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

// sanitizeRemote drops credentials from a remote URL before it goes into
// a public annotation.
func sanitizeRemote(u string) string {
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	return u
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
