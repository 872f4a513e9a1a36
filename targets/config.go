package targets

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is kiln.yaml, decoded. Field tags give the YAML key of each field:
// they are the schema, and Decode rejects any key that has no field.
type Config struct {
	Version   int                      `yaml:"version"`
	App       App                      `yaml:"app"`
	Image     Image                    `yaml:"image"`
	Platforms []string                 `yaml:"platforms"`
	Targets   map[string]*TargetConfig `yaml:"targets"`
	Verify    VerifyConfig             `yaml:"verify"`
	Sign      SignConfig               `yaml:"sign"`

	// File is the config file's path as given; relative paths in the
	// config (app.dir, image.output, oci: bases) are relative to its directory.
	File string `yaml:"-"`
	// Overrides are the keys KILN_* variables and --set gave, in the
	// order they were applied.
	Overrides []Override `yaml:"-"`

	root *yaml.Node // the file's document with the overrides applied: where each key is
}

// Errorf returns a ConfigError for the dotted key, with the key's line in
// the file when its value came from there.
func (c *Config) Errorf(key, fix, format string, args ...any) *ConfigError {
	return &ConfigError{File: c.File, Line: c.Line(key), Key: key, Problem: fmt.Sprintf(format, args...), Fix: fix}
}

// Line is the line of the dotted key in File, or 0 when the key is not in
// the file (a default) or its value came from KILN_* or --set.
func (c *Config) Line(key string) int {
	if c.root == nil {
		return 0
	}
	return line(c.root, strings.Split(key, "."))
}

// App says what to build.
type App struct {
	Name    string   `yaml:"name"`
	Dir     string   `yaml:"dir"`
	Main    string   `yaml:"main"`
	Flags   []string `yaml:"flags"`
	Ldflags []string `yaml:"ldflags"`
	Tags    []string `yaml:"tags"`
	Env     []string `yaml:"env"`
}

// Image says how the built binary becomes an image and where it goes.
type Image struct {
	Repository string            `yaml:"repository"`
	Output     string            `yaml:"output"`
	Tags       []string          `yaml:"tags"`
	Entrypoint string            `yaml:"entrypoint"`
	User       string            `yaml:"user"`
	Workdir    string            `yaml:"workdir"`
	Env        []string          `yaml:"env"`
	Labels     map[string]string `yaml:"labels"`
}

// TargetConfig is one entry of the targets map as written in the file.
type TargetConfig struct {
	Libc           string   `yaml:"libc"`
	Base           string   `yaml:"base"`
	Default        bool     `yaml:"default"`
	Platforms      []string `yaml:"platforms"`       // a subset of the top-level platforms; empty means all
	Link           string   `yaml:"link"`            // dynamic (default) | static (musl only)
	CC             string   `yaml:"cc"`              // overrides the C compiler kiln picks
	Builder        string   `yaml:"builder"`         // host (default) | container
	BuilderImage   string   `yaml:"builder_image"`   // container builder image, pinned by digest
	BuilderRuntime string   `yaml:"builder_runtime"` // auto | docker | podman
	BuilderNetwork bool     `yaml:"builder_network"` // let the build container reach the network
	Tags           []string `yaml:"tags"`
	Ldflags        []string `yaml:"ldflags"`
	Env            []string `yaml:"env"`
	// Verify overrides keys of the top-level verify block for this target.
	Verify VerifyConfig `yaml:"verify"`
}

// SignConfig says how released images are signed (SPEC §5).
type SignConfig struct {
	Key     string   `yaml:"key"`     // a cosign key file, env://VAR or a KMS URI; empty: no signing
	TLog    bool     `yaml:"tlog"`    // upload to a transparency log (needs network)
	Keyless bool     `yaml:"keyless"` // Fulcio + Rekor instead of a key (needs network)
	Attest  []string `yaml:"attest"`  // sbom, verification
}

// Enabled reports whether images are signed.
func (s SignConfig) Enabled() bool { return s.Key != "" || s.Keyless }

// Attests reports whether the attestation kind is wanted.
func (s SignConfig) Attests(kind string) bool { return slices.Contains(s.Attest, kind) }

// VerifyConfig is a verify block. Unset fields are nil, so that a target's
// block overrides only the keys it names (Policy merges them).
type VerifyConfig struct {
	Resolver   *string  `yaml:"resolver"`    // go | cgo | any
	Run        *bool    `yaml:"run"`         // start the binary inside the image
	Args       []string `yaml:"args"`        // smoke arguments for run.start
	LookupArgs []string `yaml:"lookup_args"` // arguments that make the binary resolve {name}, for run.resolver
	ExpectExit *int     `yaml:"expect_exit"`
	RunTimeout *string  `yaml:"run_timeout"` // a Go duration, e.g. 2s
	DNSLoad    *int     `yaml:"dns_load"`    // concurrent lookups inside the image; 0 = off
	Require    []string `yaml:"require"`     // certs, tzdata, nonroot
}

// defaultConfig holds the values SPEC §3 gives for keys the file leaves
// out; Decode decodes the file over it.
func defaultConfig() *Config {
	return &Config{
		Version:   1,
		App:       App{Dir: ".", Flags: []string{"-trimpath"}},
		Image:     Image{Output: "dist", Tags: []string{"latest"}, Entrypoint: "/app", User: "65532:65532"},
		Platforms: []string{"linux/amd64"},
		Sign:      SignConfig{Attest: []string{"sbom", "verification"}},
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

// SelectionError is a Selection that names what the config does not have,
// or that leaves nothing to build. Field is what was selected, "targets" or
// "platforms"; a CLI names its own flag for it.
type SelectionError struct {
	File    string
	Field   string
	Problem string
	Fix     string
}

func (e *SelectionError) Error() string {
	return (&ConfigError{File: e.File, Key: "selected " + e.Field, Problem: e.Problem, Fix: e.Fix}).Error()
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
