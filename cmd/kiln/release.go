package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

type selectFlags struct {
	targets   []string
	platforms []string
}

func (s *selectFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&s.targets, "target", nil, "only this target (repeatable)")
	cmd.Flags().StringArrayVar(&s.platforms, "platform", nil, "only this platform, OS/ARCH (repeatable)")
}

func (s *selectFlags) selection() targets.Selection {
	return targets.Selection{Targets: s.targets, Platforms: s.platforms}
}

func newPlan(g *globalFlags) *cobra.Command {
	var (
		sel    selectFlags
		asJSON bool
		matrix bool
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show the target × platform matrix and what would be built; builds nothing",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			prep, err := build.Prepare(cmd.Context(), cfg, sel.selection(), build.Options{HostEnv: os.Environ(), Cache: cache.Open()})
			if err != nil {
				return err
			}
			p := prep.Plan
			switch {
			case matrix:
				// One line, for $GITHUB_OUTPUT and strategy.matrix: fromJSON(...).
				b, err := json.Marshal(map[string]any{"include": planRows(p)})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return nil
			case asJSON:
				return writeJSON(cmd.OutOrStdout(), planDocument{SchemaVersion: planSchemaVersion, App: cfg.App.Name, Rows: planRows(p)})
			}
			renderPlan(cmd.OutOrStdout(), p)
			return nil
		},
	}
	sel.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the plan as one JSON document: {"schemaVersion", "app", "targets": [one object per row]}`)
	cmd.Flags().BoolVar(&matrix, "matrix", false, `print {"include": [rows]} on one line, for a CI matrix (GitHub Actions strategy.matrix)`)
	return cmd
}

// planRow is one row of `kiln plan --json`: flat, so a CI matrix can use it.
type planRow struct {
	Target     string               `json:"target"`
	Platform   string               `json:"platform"`
	Libc       string               `json:"libc"`
	Link       string               `json:"link,omitempty"`
	Builder    string               `json:"builder"`
	CC         string               `json:"cc,omitempty"`
	CGOEnabled bool                 `json:"cgo_enabled"`
	Base       string               `json:"base"`
	Loader     string               `json:"loader,omitempty"` // what the binary needs from the image
	Default    bool                 `json:"default"`
	BuildTags  []string             `json:"build_tags"`
	Cgo        []targets.CgoPackage `json:"cgo_packages"`
	Decision   string               `json:"decision"`
	Warnings   []string             `json:"warnings,omitempty"`
}

func planRows(p *targets.Plan) []planRow {
	rows := make([]planRow, 0, len(p.Rows))
	for _, r := range p.Rows {
		row := planRow{
			Target: r.Target.Name, Platform: r.Platform.String(), Libc: string(r.Target.Libc), Builder: r.Target.Builder.String(),
			CC: r.Toolchain.CC, CGOEnabled: r.CGO(), Base: r.Target.Base.Raw, Loader: r.Loader(), Default: r.Target.Default,
			BuildTags: append([]string{}, r.Target.Tags...), Cgo: append([]targets.CgoPackage{}, r.Cgo...),
			Decision: r.Decision(), Warnings: r.Warnings,
		}
		if r.CGO() {
			row.Link = r.Target.Link
		}
		rows = append(rows, row)
	}
	return rows
}

func renderPlan(w io.Writer, p *targets.Plan) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tPLATFORM\tLIBC\tCGO\tBASE\tCGO PACKAGES\tDECISION")
	var warnings []string
	for _, r := range planRows(p) {
		cgo := "0"
		if r.CGOEnabled {
			cgo = "1"
		}
		pkgs := make([]string, len(r.Cgo))
		for i, c := range r.Cgo {
			pkgs[i] = c.ImportPath
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Target, r.Platform, r.Libc, cgo, shortRef(r.Base), orDash(strings.Join(pkgs, ",")), r.Decision)
		for _, msg := range r.Warnings {
			warnings = append(warnings, fmt.Sprintf("warning: %s %s: %s", r.Target, r.Platform, msg))
		}
	}
	tw.Flush()
	for _, msg := range warnings {
		fmt.Fprintln(w, msg)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newRelease(g *globalFlags) *cobra.Command {
	var (
		sel     selectFlags
		opts    build.Options
		asJSON  bool
		merge   bool
		key     string
		noCache bool
	)
	cmd := &cobra.Command{
		Use:   "release [--merge RELEASE.JSON...]",
		Short: "Build, verify and publish every target (to an OCI layout, or a registry with --push)",
		Long: "kiln release builds every target × platform, verifies each image and publishes them.\n\n" +
			"Split across CI machines: each job runs `kiln release --push --no-tag --target T --platform P` and keeps\n" +
			"<output>/release.json; one last job runs `kiln release --merge JOB1/release.json JOB2/release.json …`,\n" +
			"which checks every row is there and passed, assembles each target's index from the pushed images and tags.",
		Args: func(cmd *cobra.Command, args []string) error {
			if merge && len(args) == 0 {
				return usageError{fmt.Errorf("--merge needs the release.json files of the split jobs")}
			}
			if !merge {
				return noArgs(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if key != "" {
				cfg.Sign.Key, cfg.Sign.Keyless = key, false
			}
			if merge && (len(sel.targets) > 0 || len(sel.platforms) > 0 || opts.NoTag) {
				return usageError{fmt.Errorf("--merge takes the whole plan: drop --target, --platform and --no-tag")}
			}
			if opts.NoTag && !opts.Push {
				return usageError{fmt.Errorf("--no-tag is for split jobs that --push by digest")}
			}
			if opts.Push && cfg.Image.Repository == "" {
				return cfg.Errorf("image.repository", "set image.repository (or KILN_IMAGE_REPOSITORY), or drop --push to write an OCI layout", "--push needs a registry to push to")
			}
			opts.HostEnv = os.Environ()
			opts.Progress = cmd.ErrOrStderr()
			opts.UserAgent = "kiln/" + version()
			if !noCache {
				opts.Cache = cache.Open()
			}
			var res *build.Result
			if merge {
				rows, rerr := build.ReadResults(args)
				if rerr != nil {
					return rerr
				}
				res, err = build.Merge(cmd.Context(), cfg, rows, opts)
			} else {
				res, err = build.Release(cmd.Context(), cfg, sel.selection(), opts)
			}
			renderSummary(cmd.ErrOrStderr(), res)
			if asJSON {
				if jerr := writeJSON(cmd.OutOrStdout(), res); jerr != nil && err == nil {
					err = jerr
				}
			} else if err == nil {
				for _, a := range publishedRefs(res) {
					fmt.Fprintln(cmd.OutOrStdout(), a)
				}
			}
			return err
		},
	}
	sel.register(cmd)
	cmd.Flags().BoolVar(&opts.Push, "push", false, "push to image.repository by digest, then tag (default: write an OCI layout to <output>/oci)")
	cmd.Flags().BoolVar(&opts.NoTag, "no-tag", false, "with --push: push by digest only, for a split job that --merge will tag")
	cmd.Flags().BoolVar(&merge, "merge", false, "assemble, tag (and sign) the rows that split jobs pushed; arguments are their release.json files")
	cmd.Flags().IntVarP(&opts.Jobs, "jobs", "j", runtime.NumCPU(), "builds to run at once")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print release.json to stdout")
	cmd.Flags().StringVar(&key, "key", "", "sign with this cosign key (a file, env://VAR or a KMS URI); overrides sign.key")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "use none of kiln's caches: recompute the cgo analysis, base facts, binary layer digests and static verification, link every binary afresh, give a builder container empty caches (the host's go build cache is still used)")
	return cmd
}

// publishedRefs lists each published target once: its name and its
// reference by digest.
func publishedRefs(res *build.Result) []string {
	var refs []string
	seen := map[string]bool{}
	for _, r := range res.Rows {
		if r.Ref != "" && !seen[r.Ref] {
			seen[r.Ref] = true
			refs = append(refs, r.Target+" "+r.Ref)
		}
	}
	return refs
}

func renderSummary(w io.Writer, res *build.Result) {
	if res == nil || len(res.Rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tPLATFORM\tLIBC\tSTATUS\tCHECKS\tIMAGE\tTAGS\tPUSHED\tSIGNED\tCOMPILE")
	for _, r := range res.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t%.1fs\n", r.Target, r.Platform, r.Libc, r.Status, checksCell(r.Checks),
			shortDigest(r.ImageDigest), orDash(strings.Join(r.Tags, ",")), r.Pushed, r.Signed, r.Timings["compile"])
	}
	tw.Flush()
	where := res.Layout
	if res.Repository != "" {
		where = res.Repository
	}
	fmt.Fprintf(w, "%d row(s) in %.1fs → %s\n", len(res.Rows), res.Timings["total"], where)
}

// checksCell sums up a row's checks: "9 pass, 4 skip", or the failing ids.
func checksCell(checks []verify.Finding) string {
	if len(checks) == 0 {
		return "-"
	}
	count := map[verify.Status]int{}
	var failed []string
	for _, c := range checks {
		count[c.Status]++
		if c.Status == verify.Fail {
			failed = append(failed, c.ID)
		}
	}
	if len(failed) > 0 {
		return "FAIL " + strings.Join(failed, ",")
	}
	cell := fmt.Sprintf("%d pass", count[verify.Pass])
	for _, st := range []verify.Status{verify.Warn, verify.Skip} {
		if count[st] > 0 {
			cell += fmt.Sprintf(", %d %s", count[st], st)
		}
	}
	return cell
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	if d == "" {
		return "-"
	}
	return d
}

// shortRef keeps a reference readable in a table: the digest is shortened.
func shortRef(ref string) string {
	if name, d, ok := strings.Cut(ref, "@"); ok {
		return name + "@" + shortDigest(d)
	}
	return ref
}
