package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
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

// loadConfig reads the config file through a fresh viper instance, overlays
// KILN_<SECTION>_<KEY> variables and --set flags (flags win over env, env
// over the file), and decodes and validates the result.
func (g *globalFlags) loadConfig() (*targets.Config, error) {
	src, err := os.ReadFile(g.file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &targets.ConfigError{File: g.file, Problem: "no such config file", Fix: "create it (config.example.yaml is a documented start) or pass -f PATH"}
		}
		return nil, &targets.ConfigError{File: g.file, Problem: err.Error()}
	}
	// "::" as key delimiter keeps dotted label keys (org.opencontainers.…) whole.
	v := viper.NewWithOptions(viper.KeyDelimiter("::"))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(src)); err != nil {
		return nil, &targets.ConfigError{File: g.file, Problem: "not valid YAML: " + err.Error(), Fix: "correct the YAML syntax"}
	}
	for k, d := range targets.Defaults() {
		v.SetDefault(vkey(k), d)
	}
	v.SetEnvPrefix("KILN")
	v.SetEnvKeyReplacer(strings.NewReplacer("::", "_", "-", "_"))
	v.AutomaticEnv()
	for _, k := range knownKeys(reflect.TypeOf(targets.Config{}), "") {
		_ = v.BindEnv(vkey(k)) // so KILN_* works for keys the file leaves out
	}
	for _, s := range g.sets {
		k, val, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--set %q: write KEY=VALUE, e.g. --set image.output=out", s)}
		}
		v.Set(vkey(k), val)
	}
	return targets.Decode(g.file, src, v.AllSettings())
}

func vkey(dotted string) string { return strings.ReplaceAll(dotted, ".", "::") }

// knownKeys lists the dotted keys of the fixed part of the schema (not the
// targets map, whose keys exist only once the file names them).
func knownKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		k := t.Field(i).Tag.Get("kiln")
		if k == "" || k == "-" || t.Field(i).Type.Kind() == reflect.Map && k == "targets" {
			continue
		}
		if t.Field(i).Type.Kind() == reflect.Struct {
			keys = append(keys, knownKeys(t.Field(i).Type, prefix+k+".")...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	return keys
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
