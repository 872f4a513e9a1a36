package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rogpeppe/go-internal/renameio"

	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// ResultSchemaVersion is the schemaVersion of release.json. It changes only
// when a field is removed or changes meaning; new fields keep it.
const ResultSchemaVersion = 1

// Result is what a release did: the model behind release.json, the summary
// table and --json output. It is made from the stages' results at the end,
// so a failed release still says how far each row got.
type Result struct {
	SchemaVersion int          `json:"schemaVersion"`
	App           string       `json:"app"`
	Passed        bool         `json:"passed"`
	Repository    string       `json:"repository,omitempty"`
	Layout        string       `json:"layout,omitempty"`
	Rows          []*RowResult `json:"targets"`
	Error         string       `json:"error,omitempty"`
	Timings       Timings      `json:"timings"`
}

func newResult(app string) *Result {
	return &Result{SchemaVersion: ResultSchemaVersion, App: app, Timings: Timings{}}
}

// RowResult is one target × platform.
type RowResult struct {
	Target      string           `json:"target"`
	Platform    string           `json:"platform"`
	Libc        string           `json:"libc"`
	CGOEnabled  bool             `json:"cgo_enabled"`
	Builder     string           `json:"builder"` // host, or "<runtime> <builder image>"
	BuildTags   []string         `json:"build_tags"`
	Base        BaseInfo         `json:"base"`
	ImageDigest string           `json:"image_digest,omitempty"`
	IndexDigest string           `json:"index_digest,omitempty"` // set when the target has several platforms
	Ref         string           `json:"ref,omitempty"`          // repo@digest or oci:<layout>@digest
	Tags        []string         `json:"tags"`
	Pushed      bool             `json:"pushed"`
	Signed      bool             `json:"signed"`
	Status      string           `json:"status"` // one of the Status* values below
	Warnings    []string         `json:"warnings,omitempty"`
	Checks      []verify.Finding `json:"checks"`
	// VerifyCached says the static checks' report is an earlier run's for
	// the same image digest, expectations and kiln build (run.* was off).
	VerifyCached bool             `json:"verify_cached,omitempty"`
	DNSLoad      *verify.LoadStat `json:"dns_load,omitempty"`
	// BuildInfo is the binary's build info as `go version -m` prints it:
	// what --merge, which does not have the binary, builds the SBOM from.
	BuildInfo string  `json:"build_info,omitempty"`
	Error     string  `json:"error,omitempty"`
	Timings   Timings `json:"timings"`
}

// BaseInfo names the base image a row was assembled on.
type BaseInfo struct {
	Name   string `json:"name"`
	Digest string `json:"digest,omitempty"` // the platform manifest's digest
}

// Timings are seconds per stage.
type Timings map[string]float64

func (t Timings) add(stage string, d time.Duration) {
	t[stage] += float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// Row status values (README "release.json" documents each).
const (
	StatusOK           = "ok"            // built, verified, published (signing or tagging may still have failed: see Result.Error)
	StatusFailed       = "failed"        // this row's compile, assembly, verification or publishing failed (Error says which)
	StatusNotBuilt     = "not built"     // another row failed first, or the release stopped before this row built
	StatusNotPublished = "not published" // verified, but another row failed, so nothing was published
)

// newRowResult is a row's result before any stage ran.
func newRowResult(row targets.Row, builder string) *RowResult {
	return &RowResult{
		Target: row.Target.Name, Platform: row.Platform.String(), Libc: string(row.Target.Libc),
		CGOEnabled: row.CGO(), BuildTags: row.Target.Tags, Base: BaseInfo{Name: row.Target.Base.Name()},
		Warnings: row.Warnings, Timings: Timings{}, Tags: []string{}, Builder: builder,
	}
}

// rowResults makes each row's result from what the stages produced: its
// build, what publishing did (zero when it never started) and how the
// release ended (err).
func rowResults(builds []*rowBuild, pub published, err error) []*RowResult {
	out := make([]*RowResult, len(builds))
	for i, b := range builds {
		id := b.row.ID()
		rr := newRowResult(b.row, b.builder)
		rr.Base.Digest = digestString(b.base.digest)
		rr.Timings = b.timings
		if b.image != nil {
			rr.ImageDigest = b.digest.String()
		}
		if b.buildInfo != nil {
			rr.BuildInfo = b.buildInfo.String()
		}
		if b.report != nil {
			rr.Checks, rr.DNSLoad, rr.VerifyCached = b.report.Checks, b.report.DNSLoad, b.cached
		}
		rr.IndexDigest, rr.Ref, rr.Pushed, rr.Signed = pub.indexes[id], pub.refs[id], pub.pushed, pub.signed[id]
		if tags, ok := pub.tags[id]; ok {
			rr.Tags = tags
		}
		if pub.done {
			rr.Timings.add("publish", pub.publish)
		}
		rr.Status, rr.Error = rowStatus(b, pub, err)
		out[i] = rr
	}
	return out
}

// rowStatus is a row's status and error: its own failure first, then how
// far the release got.
func rowStatus(b *rowBuild, pub published, err error) (string, string) {
	switch {
	case b.err != nil:
		return StatusFailed, b.err.Error()
	case b.stopped:
		return StatusNotBuilt, "stopped: another build failed"
	case b.report == nil:
		return StatusNotBuilt, ""
	case !b.report.Passed:
		f := b.report.Failures()[0]
		return StatusFailed, fmt.Sprintf("verification failed: %s: %s", f.ID, f.Evidence)
	case pub.done: // published: signing or tagging may fail after, the image is out
		return StatusOK, ""
	case pub.started:
		return StatusFailed, err.Error()
	case err != nil:
		return StatusNotPublished, "not published: " + firstLineOf(err.Error())
	}
	return StatusOK, ""
}

// WriteJSON writes r as indented JSON to path, creating its directory.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := renameio.WriteFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Chmod(path, 0o644) // renameio's temp file is 0600
}
