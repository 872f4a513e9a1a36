package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/anyimage"
	"github.com/kilnbuild/kiln/internal/explain"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

func newVerify() *cobra.Command {
	var (
		platforms  []string
		opts       anyimage.VerifyOptions
		resolver   string
		require    []string
		run        bool
		args       []string
		lookupArgs []string
		timeout    time.Duration
		expectExit int
		dnsLoad    int
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Check that an image's binary starts and resolves names inside the image (any image, built by kiln or not)",
		Long: "IMAGE is a registry reference or oci:<layout>[:<name>][@sha256:…]. The binary is the image's entrypoint\n" +
			"(or --binary); the libc it needs is read from it. Exit 0 when every check passed, 1 when one failed.",
		Args: oneArg("IMAGE"),
		RunE: func(cmd *cobra.Command, a []string) error {
			for _, p := range platforms {
				pl, err := targets.ParsePlatform(p)
				if err != nil {
					return usageError{fmt.Errorf("--platform: %v", err)}
				}
				opts.Platforms = append(opts.Platforms, pl)
			}
			v := targets.VerifyConfig{Resolver: &resolver, Run: &run, Require: require, Args: args, LookupArgs: lookupArgs, ExpectExit: &expectExit, DNSLoad: &dnsLoad}
			var ce *targets.ConfigError
			if err := v.Check(); errors.As(err, &ce) {
				return usageError{errors.New(explain.Message("--"+strings.ReplaceAll(ce.Key, "_", "-"), ce.Problem, ce.Fix))}
			}
			opts.Policy = v.Apply(targets.DefaultPolicy())
			opts.Policy.RunTimeout = timeout
			opts.Runner = verify.NewRunner()
			reports, err := anyimage.Verify(cmd.Context(), a[0], opts)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), newVerifyDocument(a[0], reports)); err != nil {
					return err
				}
			} else {
				renderReports(cmd.OutOrStdout(), reports)
			}
			var failed []string
			for _, r := range reports {
				for _, f := range r.Failures() {
					failed = append(failed, fmt.Sprintf("%s: %s: %s", r.Platform, f.ID, f.Evidence))
				}
			}
			if len(failed) > 0 {
				return findingsError{fmt.Errorf("%d check(s) failed:\n%s", len(failed), strings.Join(failed, "\n"))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&platforms, "platform", nil, "check only this platform, OS/ARCH (repeatable; default: every platform of the image)")
	f.StringVar(&opts.Binary, "binary", "", "the binary's path in the image (default: the entrypoint)")
	f.StringVar(&resolver, "resolver", "any", "which DNS resolver the binary must use: go, cgo or any")
	f.StringSliceVar(&require, "require", nil, "files the image must have even if the binary does not need them: certs,tzdata,nonroot")
	f.BoolVar(&run, "run", true, "start the binary inside the image (run.start, run.resolver)")
	f.StringArrayVar(&args, "args", nil, "smoke argument for run.start (repeatable), e.g. --args=--version")
	f.StringArrayVar(&lookupArgs, "lookup-args", nil, "argument that makes the binary resolve {name} (repeatable), e.g. --lookup-args=--lookup --lookup-args={name}")
	f.DurationVar(&timeout, "run-timeout", 2*time.Second, "a run still going after this is a server that started")
	f.IntVar(&expectExit, "expect-exit", 0, "the exit code run.start expects")
	f.IntVar(&dnsLoad, "dns-load", 0, "run the lookup this many times concurrently (16 at once) and report successes and p50/p99 latency")
	f.BoolVar(&asJSON, "json", false, `print one JSON document: {"schemaVersion", "image", "passed", "reports": [one per platform]}`)
	return cmd
}

// renderReports prints each platform's checks as a table.
func renderReports(w io.Writer, reports []*verify.Report) {
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		verdict := "PASSED"
		if !r.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "%s  %s  binary %s  libc %s  %s\n", r.Image, r.Platform, r.Binary, orDash(r.Libc), verdict)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range r.Checks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.ID, c.Status, c.Evidence)
		}
		tw.Flush()
		if r.DNSLoad != nil {
			fmt.Fprintf(w, "  dns load: %d/%d lookups succeeded, p50 %.1f ms, p99 %.1f ms\n", r.DNSLoad.Succeeded, r.DNSLoad.Lookups, r.DNSLoad.P50ms, r.DNSLoad.P99ms)
		}
	}
}
