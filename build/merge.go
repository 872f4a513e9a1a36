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
			return nil, &InputError{Input: f, Problem: err.Error(), Fix: "pass the release.json files of the split jobs"}
		}
		var res Result
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, &InputError{Input: f, Problem: fmt.Sprintf("not a kiln release.json: %v", err)}
		}
		// 0 is a release.json written before schemaVersion existed: the same shape.
		if res.SchemaVersion > ResultSchemaVersion {
			return nil, &InputError{Input: f, Problem: fmt.Sprintf("schemaVersion %d is newer than this kiln reads (%d)", res.SchemaVersion, ResultSchemaVersion),
				Fix: "merge with the kiln version the split jobs ran"}
		}
		rows = append(rows, res.Rows...)
	}
	return rows, nil
}

// Merge is the fan-in of a split release: every row cfg expands to was
// built, verified and pushed by digest by its own job; Merge checks that
// each row is there and passed, assembles each target's multi-platform index
// from the pushed images (exactly as a single-machine release would), pushes
// it, signs and tags. It refuses when a row is missing, failed or was not
// pushed. It needs no facts: nothing is built here.
func Merge(ctx context.Context, cfg *targets.Config, inputs []*RowResult, opts Options) (*Result, error) {
	opts.Push = true // merging only happens in a registry
	r := newRelease(opts)
	start := time.Now()
	res := newResult(cfg.App.Name)
	plan, err := r.merge(ctx, cfg, inputs, res)
	res.Timings.add("total", time.Since(start))
	res.Passed = err == nil
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	if werr := res.WriteJSON(filepath.Join(plan.Output, "release.json")); werr != nil {
		return res, &RegistryError{Op: "writing release.json", Err: werr}
	}
	return res, nil
}

func (r *release) merge(ctx context.Context, cfg *targets.Config, inputs []*RowResult, res *Result) (*targets.Plan, error) {
	if cfg.Image.Repository == "" {
		return nil, cfg.Errorf("image.repository", "set image.repository to the registry the split jobs pushed to", "merging needs the registry the rows were pushed to")
	}
	plan, err := targets.Expand(cfg, targets.Selection{})
	if err != nil {
		return nil, err
	}
	repo, err := r.repository(cfg)
	if err != nil {
		return nil, err
	}
	res.Repository = repo.String()
	spec, err := imageSpec(ctx, filepath.Dir(cfg.File), cfg, r.opts.HostEnv)
	if err != nil {
		return nil, err
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
	var rows []*pubRow
	for _, row := range plan.Rows {
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
			pr := &pubRow{row: row, digest: in.ImageDigest, baseDigest: in.Base.Digest, checks: in.Checks}
			if bi, err := debug.ParseBuildInfo(in.BuildInfo); err == nil && in.BuildInfo != "" {
				pr.buildInfo = bi // the split job's binary, for the SBOM
			}
			rows = append(rows, pr)
			res.Rows = append(res.Rows, in)
		}
	}
	if len(problems) > 0 {
		return nil, &VerifyError{Failures: append([]string{"refusing to merge:"}, problems...)}
	}

	remoteOpts := append(slices.Clone(r.registry), remote.WithContext(ctx))
	for _, pr := range rows {
		ref := repo.Digest(pr.digest)
		img, err := remote.Image(ref, remoteOpts...)
		if err != nil {
			return nil, &RegistryError{Op: "fetching the pushed row", Ref: ref.String(), Err: err}
		}
		pr.image = plainImage{img}
	}
	signer, err := newSigner(ctx, cfg.Sign, r.registry)
	if err != nil {
		return nil, err
	}
	baseDigest := func(t *targets.Target) v1.Hash {
		d, _ := v1.NewHash(t.Base.Digest) // validated: zero for scratch
		return d
	}
	pub, err := r.publishStages(ctx, plan, rows, baseDigest, spec, signer, repo, res.Timings)
	for i, pr := range rows {
		in, id := res.Rows[i], pr.row.ID()
		in.IndexDigest = pub.indexes[id]
		if pub.done {
			in.Status, in.Ref, in.Pushed = StatusOK, pub.refs[id], true
			if in.Timings == nil {
				in.Timings = Timings{}
			}
			in.Timings.add("publish", pub.publish)
		}
		in.Signed = in.Signed || pub.signed[id]
		if tags, ok := pub.tags[id]; ok {
			in.Tags = tags
		}
	}
	return plan, err
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
