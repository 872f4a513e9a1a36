package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// ReadResults reads release.json files written by `kiln release --push
// --no-tag` runs (one per CI job), for Merge.
func ReadResults(files []string) ([]*RowResult, error) {
	var rows []*RowResult
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &targets.ConfigError{Key: "--merge", Problem: err.Error(), Fix: "pass the release.json files of the split jobs"}
		}
		var res Result
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, &targets.ConfigError{Key: "--merge", Problem: fmt.Sprintf("%s is not a kiln release.json: %v", f, err)}
		}
		rows = append(rows, res.Rows...)
	}
	return rows, nil
}

// Merge is the fan-in of a split release: every row of the plan was built,
// verified and pushed by digest by its own job; Merge checks that each row
// is there and passed, assembles each target's multi-platform index from the
// pushed images (exactly as a single-machine release would), pushes it and
// tags. It refuses when a row is missing, failed or was not pushed.
func Merge(ctx context.Context, p *targets.Plan, rows []*RowResult, opts Options) (*Result, error) {
	opts.Push = true // merging only happens in a registry
	r := newRelease(p, opts)
	start := time.Now()
	err := r.merge(ctx, rows)
	r.res.Timings.add("total", time.Since(start))
	r.res.Passed = err == nil
	if err != nil {
		r.res.Error = err.Error()
		return r.res, err
	}
	if werr := r.res.WriteJSON(filepath.Join(p.Output, "release.json")); werr != nil {
		return r.res, &RegistryError{Op: "writing release.json", Err: werr}
	}
	return r.res, nil
}

func (r *release) merge(ctx context.Context, inputs []*RowResult) error {
	cfg := r.plan.Config
	if cfg.Image.Repository == "" {
		return cfg.Errorf("image.repository", "set image.repository to the registry the split jobs pushed to", "--merge needs the registry the rows were pushed to")
	}
	repo, err := name.NewRepository(cfg.Image.Repository)
	if err != nil {
		return cfg.Errorf("image.repository", "", "%v", err)
	}
	r.res.Repository = repo.String()
	if err := r.imageSpec(ctx); err != nil {
		return err
	}
	byKey := map[string]*RowResult{}
	var problems []string
	for _, in := range inputs {
		key := in.Target + " " + in.Platform
		if prev, ok := byKey[key]; ok && prev.ImageDigest != in.ImageDigest {
			problems = append(problems, fmt.Sprintf("%s: two release.json files give different images (%s and %s); pass one job's file per row", key, prev.ImageDigest, in.ImageDigest))
		}
		byKey[key] = in
	}
	for _, row := range r.plan.Rows {
		key := row.Target.Name + " " + row.Platform.String()
		in, ok := byKey[key]
		switch {
		case !ok:
			problems = append(problems, key+": no release.json has this row")
		case in.Status != StatusOK || !in.Pushed || in.ImageDigest == "":
			problems = append(problems, fmt.Sprintf("%s: status %q, pushed %v: only verified, pushed rows can be merged", key, in.Status, in.Pushed))
		case failedCheck(in.Checks) != "":
			problems = append(problems, key+": "+failedCheck(in.Checks))
		case len(in.Checks) == 0:
			problems = append(problems, key+": the row records no verification")
		default:
			rs := &rowState{row: row, res: in}
			if bi, err := debug.ParseBuildInfo(in.BuildInfo); err == nil && in.BuildInfo != "" {
				rs.buildInfo = bi // the split job's binary, for the SBOM
			}
			r.rows = append(r.rows, rs)
			r.res.Rows = append(r.res.Rows, in)
		}
	}
	if len(problems) > 0 {
		return &VerifyError{Failures: append([]string{"refusing to merge:"}, problems...)}
	}

	remoteOpts := append(slices.Clone(r.registry), remote.WithContext(ctx))
	for _, rs := range r.rows {
		ref := repo.Digest(rs.res.ImageDigest)
		img, err := remote.Image(ref, remoteOpts...)
		if err != nil {
			return &RegistryError{Op: "fetching the pushed row", Ref: ref.String(), Err: err}
		}
		rs.image = plainImage{img}
	}
	bases := map[string]*Base{}
	for _, t := range r.plan.Targets {
		b := &Base{Ref: t.Base}
		if t.Base.Digest != "" {
			if b.Digest, err = v1.NewHash(t.Base.Digest); err != nil {
				return err
			}
		}
		bases[t.Base.Raw] = b
	}
	arts, err := r.artifacts(bases)
	if err != nil {
		return err
	}
	if r.signer, err = newSigner(ctx, cfg.Sign, r.registry); err != nil {
		return err
	}
	r.publishing = true
	if err := push(ctx, repo, arts, remoteOpts); err != nil {
		return err
	}
	r.recordPublished(arts, repo, 0)
	if r.signer != nil {
		// The SBOMs come from the build info the split jobs recorded.
		if err := r.signPushed(ctx, repo, arts); err != nil {
			return err
		}
	}
	return r.tag(ctx, repo, arts, remoteOpts)
}

// failedCheck names the first failed check, or "".
func failedCheck(checks []verify.Finding) string {
	for _, c := range checks {
		if c.Status == verify.Fail {
			return "failed verification: " + c.ID + ": " + c.Evidence
		}
	}
	return ""
}

// plainImage hides the registry's descriptor of a pulled image (which
// carries the manifest's annotations), so the index lists it exactly as a
// single-machine release lists the image it just built.
type plainImage struct{ v1.Image }
