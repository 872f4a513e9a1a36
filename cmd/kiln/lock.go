package main

import (
	"fmt"
	"os"

	"github.com/rogpeppe/go-internal/renameio"
	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/targets"
)

func newLock(g *globalFlags) *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Pin every base to the digest its tag (or layout name) points to now, rewriting the config in place",
		Long: "kiln lock resolves each base written with a tag or an OCI layout entry name to its current digest\n" +
			"and writes `name:tag@sha256:…` back into the config file, keeping comments and order.\n" +
			"With --check it changes nothing and exits 1 when a pin is missing or stale.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := os.ReadFile(g.file)
			if err != nil {
				return fileError{g.file, err.Error(), "pass the config with -f PATH"}
			}
			out, pins, err := targets.Lock(g.file, src, build.ResolveBase(cmd.Context(), nil))
			if err != nil {
				return err
			}
			stale := 0
			for _, p := range pins {
				state := "up to date"
				if p.Stale() {
					stale++
					state = "-> " + p.New
					if check {
						state = "stale: the tag now points to " + p.New
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%d: %s: %s %s\n", g.file, p.Line, p.Key, p.Old, state)
			}
			if check {
				if stale > 0 {
					return findingsError{fmt.Errorf("%d base pin(s) are missing or stale; run `kiln lock` to update them", stale)}
				}
				return nil
			}
			if stale == 0 {
				return nil
			}
			st, err := os.Stat(g.file)
			if err != nil {
				return fileError{g.file, err.Error(), ""}
			}
			if err := renameio.WriteFile(g.file, out); err != nil {
				return fileError{g.file, "writing the updated config: " + err.Error(), ""}
			}
			// renameio's temp file is 0600: give the config its mode back.
			if err := os.Chmod(g.file, st.Mode().Perm()); err != nil {
				return fileError{g.file, "restoring the config's mode: " + err.Error(), ""}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "kiln: pinned %d base(s) in %s\n", stale, g.file)
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "change nothing; exit 1 when a pin is missing or differs from what the tag points to now")
	return cmd
}
