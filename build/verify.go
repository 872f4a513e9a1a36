package build

import (
	"context"
	"fmt"
	"time"

	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// verifyRow runs the checks of SPEC §4 on a row's image and keeps the
// report. A failing check is in the report, not an error: the release goes
// on verifying the other rows so the report names every problem, and then
// publishes nothing. The error is an image that could not be read.
func (r *release) verifyRow(ctx context.Context, prep *Prepared, b *rowBuild, runner *verify.Runner) error {
	start := time.Now()
	t := b.row.Target
	in := verify.Input{
		Image: b.image, Ref: b.row.ID(), Platform: b.row.Platform,
		Libc: t.Libc, Link: t.Link, Policy: t.Policy, Runner: runner,
		Scratch: t.Base.Kind == targets.BaseScratch,
	}
	if !in.Scratch {
		in.BaseName, in.BaseDigest = t.Base.Name(), b.base.digest.String()
	}
	rep, cached, err := r.verifyImage(ctx, prep, b, in)
	b.timings.add("verify", time.Since(start))
	if err != nil {
		return &RegistryError{Op: "verifying", Ref: b.row.ID() + " (reading its image)", Err: err}
	}
	b.report, b.cached = rep, cached
	if fails := rep.Failures(); len(fails) > 0 {
		r.progress("verify", &b.row, "FAILED %s: %s", fails[0].ID, fails[0].Evidence)
		return nil
	}
	skipped := 0
	for _, c := range rep.Checks {
		if c.Status == verify.Skip {
			skipped++
		}
	}
	how := ""
	if cached {
		how = ", cached"
	}
	r.progress("verify", &b.row, "passed (%d checks, %d skipped%s)", len(rep.Checks), skipped, how)
	return nil
}

// verifyImage verifies a row's image. The static checks are a pure
// function of the image (named by its digest), what the target expects of
// it and kiln itself, so when run.* is off a report of the same inputs from
// an earlier run is the answer, as go test reuses a passing test's result;
// run.* is never cached. A base's files are flattened once per release and
// only the binary layer is added for each row.
func (r *release) verifyImage(ctx context.Context, prep *Prepared, b *rowBuild, in verify.Input) (*verify.Report, bool, error) {
	c := r.opts.Cache
	key := ""
	if !in.Policy.Run {
		keyed := in
		keyed.Image, keyed.Runner = nil, nil
		key = c.Key("verify/v1", b.digest.String(), keyed)
		var rep verify.Report
		if c.Get("verify", key, &rep) {
			return &rep, true, nil
		}
	}
	if !in.Scratch {
		base, err := prep.files.get(b.base.image, b.base.digest)
		if err != nil {
			return nil, false, fmt.Errorf("reading the files of base %s: %w", in.BaseName, err)
		}
		layers, err := b.image.Layers()
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
