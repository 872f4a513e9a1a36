package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/kilnbuild/kiln/targets"
)

// globalFlags are the flags every command that reads kiln.yaml takes.
type globalFlags struct {
	file string
	sets []string
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Build verified container images for every target a Go service ships to",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.file, "file", "f", "kiln.yaml", "config file")
	root.PersistentFlags().StringArrayVar(&g.sets, "set", nil, "override a config key, e.g. --set image.repository=127.0.0.1:5000/hello (repeatable; lists are comma-separated)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newPlan(g), newRelease(g), newLock(g), newVerify(), newSign(), newDoctor(), newVersion())
	return root
}

// loadConfig reads the config file and decodes it with the keys KILN_<SECTION>_<KEY>
// variables and --set flags set on top (flags win over the environment,
// the environment over the file).
func (g *globalFlags) loadConfig() (*targets.Config, error) {
	src, err := os.ReadFile(g.file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fileError{g.file, "no such config file", "create it (config.example.yaml is a documented start) or pass -f PATH"}
		}
		return nil, fileError{g.file, err.Error(), ""}
	}
	overrides := envOverrides(src)
	for _, s := range g.sets {
		k, val, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--set %q: write KEY=VALUE, e.g. --set image.output=out", s)}
		}
		overrides = append(overrides, targets.Override{Key: k, Value: val, Source: "--set"})
	}
	return targets.Decode(g.file, src, overrides)
}

// envOverrides reads the KILN_* variables of the keys the config can set,
// through a viper instance of its own: KILN_IMAGE_REPOSITORY,
// KILN_TARGETS_STATIC_BASE (a dash in a target name becomes _). An empty
// variable sets nothing.
func envOverrides(src []byte) []targets.Override {
	name := strings.NewReplacer(".", "_", "-", "_")
	v := viper.New()
	v.SetEnvPrefix("KILN")
	v.SetEnvKeyReplacer(name)
	var out []targets.Override
	for _, k := range targets.Keys(src) {
		if v.BindEnv(k) != nil || !v.IsSet(k) {
			continue
		}
		out = append(out, targets.Override{Key: k, Value: v.GetString(k), Source: "KILN_" + strings.ToUpper(name.Replace(k))})
	}
	return out
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "kiln", version())
			return nil
		},
	}
}

// oneArg accepts exactly one argument, described as what in the error.
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError{fmt.Errorf("%s takes one %s, got %d arguments", cmd.CommandPath(), what, len(args))}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}
