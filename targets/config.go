// Package targets owns the declarative side of kiln: the kiln.yaml schema and
// its validation, the Target (libc × base × platform) a service ships as, the
// build environment each target needs, and the Plan that expands targets into
// the rows kiln builds.
//
// It decides; it does not do. Nothing here runs a compiler, touches a
// registry or writes outputs: build/ does that from a Plan. The commands it
// runs are `go list` (Analyze, whose answer it keeps in kiln's cache) and,
// to find zig, `npm root -g`.
package targets

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Config is kiln.yaml, decoded. Field tags give the YAML key of each field;
// Decode rejects any key that has no field.
type Config struct {
	Version   int                      `kiln:"version"`
	App       App                      `kiln:"app"`
	Image     Image                    `kiln:"image"`
	Platforms []string                 `kiln:"platforms"`
	Targets   map[string]*TargetConfig `kiln:"targets"`
	Verify    VerifyConfig             `kiln:"verify"`
	Sign      SignConfig               `kiln:"sign"`

	// File is the config file's path as given; relative paths in the
	// config (app.dir, image.output, oci: bases) are relative to its directory.
	File string `kiln:"-"`

	lines func(path ...string) int // a key's line in File, 0 if not from the file
}

// Errorf returns a ConfigError for the dotted key, with the key's line in
// the file when its value came from there.
func (c *Config) Errorf(key, fix, format string, args ...any) *ConfigError {
	return &ConfigError{File: c.File, Line: c.Line(key), Key: key, Problem: fmt.Sprintf(format, args...), Fix: fix}
}

// Line is the line of the dotted key in File, or 0 when the key is not in
// the file (a flag, a default) or its value came from KILN_* or --set.
func (c *Config) Line(key string) int {
	if c.lines == nil || strings.HasPrefix(key, "-") {
		return 0
	}
	return c.lines(strings.Split(key, ".")...)
}

// App says what to build.
type App struct {
	Name    string   `kiln:"name"`
	Dir     string   `kiln:"dir"`
	Main    string   `kiln:"main"`
	Flags   []string `kiln:"flags"`
	Ldflags []string `kiln:"ldflags"`
	Tags    []string `kiln:"tags"`
	Env     []string `kiln:"env"`
}

// Image says how the built binary becomes an image and where it goes.
type Image struct {
	Repository string            `kiln:"repository"`
	Output     string            `kiln:"output"`
	Tags       []string          `kiln:"tags"`
	Entrypoint string            `kiln:"entrypoint"`
	User       string            `kiln:"user"`
	Workdir    string            `kiln:"workdir"`
	Env        []string          `kiln:"env"`
	Labels     map[string]string `kiln:"labels"`
}

// TargetConfig is one entry of the targets map as written in the file.
type TargetConfig struct {
	Libc           string   `kiln:"libc"`
	Base           string   `kiln:"base"`
	Default        bool     `kiln:"default"`
	Platforms      []string `kiln:"platforms"`       // a subset of the top-level platforms; empty means all
	Link           string   `kiln:"link"`            // dynamic (default) | static (musl only)
	CC             string   `kiln:"cc"`              // overrides the C compiler kiln picks
	Builder        string   `kiln:"builder"`         // host (default) | container
	BuilderImage   string   `kiln:"builder_image"`   // container builder image, pinned by digest
	BuilderRuntime string   `kiln:"builder_runtime"` // auto | docker | podman
	BuilderNetwork bool     `kiln:"builder_network"` // let the build container reach the network
	Tags           []string `kiln:"tags"`
	Ldflags        []string `kiln:"ldflags"`
	Env            []string `kiln:"env"`
	// Verify overrides keys of the top-level verify block for this target.
	Verify VerifyConfig `kiln:"verify"`
}

// SignConfig says how released images are signed (SPEC §5).
type SignConfig struct {
	Key     string   `kiln:"key"`     // a cosign key file, env://VAR or a KMS URI; empty: no signing
	TLog    bool     `kiln:"tlog"`    // upload to a transparency log (needs network)
	Keyless bool     `kiln:"keyless"` // Fulcio + Rekor instead of a key (needs network)
	Attest  []string `kiln:"attest"`  // sbom, verification
}

// Enabled reports whether images are signed.
func (s SignConfig) Enabled() bool { return s.Key != "" || s.Keyless }

// Attests reports whether the attestation kind is wanted.
func (s SignConfig) Attests(kind string) bool { return slices.Contains(s.Attest, kind) }

// VerifyConfig is a verify block. Unset fields are nil, so that a target's
// block overrides only the keys it names (Policy merges them).
type VerifyConfig struct {
	Resolver   *string  `kiln:"resolver"`    // go | cgo | any
	Run        *bool    `kiln:"run"`         // start the binary inside the image
	Args       []string `kiln:"args"`        // smoke arguments for run.start
	LookupArgs []string `kiln:"lookup_args"` // arguments that make the binary resolve {name}, for run.resolver
	ExpectExit *int     `kiln:"expect_exit"`
	RunTimeout *string  `kiln:"run_timeout"` // a Go duration, e.g. 2s
	DNSLoad    *int     `kiln:"dns_load"`    // concurrent lookups inside the image; 0 = off
	Require    []string `kiln:"require"`     // certs, tzdata, nonroot
}

// Defaults are the values SPEC §3 gives for keys the file leaves out, keyed
// by dotted path. The CLI registers them with viper so that KILN_* variables
// can override keys the file does not mention.
func Defaults() map[string]any {
	return map[string]any{
		"version":          1,
		"app.dir":          ".",
		"app.flags":        []string{"-trimpath"},
		"image.output":     "dist",
		"image.tags":       []string{"latest"},
		"image.entrypoint": "/app",
		"image.user":       "65532:65532",
		"platforms":        []string{"linux/amd64"},
		"sign.attest":      []string{"sbom", "verification"},
	}
}

// ConfigError is a problem with the configuration: which file, which key,
// what is wrong and how to fix it. The CLI maps it to exit code 2.
type ConfigError struct {
	File    string
	Line    int // 0 when the key is not in the file (a default, env or flag)
	Key     string
	Problem string
	Fix     string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(e.Fix)
		b.WriteString(")")
	}
	return b.String()
}

// TargetNames returns the target names in a stable order.
func (c *Config) TargetNames() []string {
	names := make([]string, 0, len(c.Targets))
	for n := range c.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
