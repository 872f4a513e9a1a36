package targets

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const goodConfig = `version: 1
app:
  name: hello
  main: ./cmd/hello
image:
  labels:
    org.opencontainers.image.Title: Hello
platforms: [linux/amd64, linux/arm64]
targets:
  static:
    libc: none
    base: gcr.io/distroless/static-debian12:nonroot@` + digest + `
    default: true
  scratch:
    libc: none
    base: scratch
    tags: [timetzdata]
`

// decode runs Decode the way the CLI does, with overrides as KILN_*
// variables or --set give them (in key order).
func decode(t *testing.T, src string, overrides map[string]string) (*Config, error) {
	t.Helper()
	var list []Override
	for _, k := range slices.Sorted(maps.Keys(overrides)) {
		list = append(list, Override{Key: k, Value: overrides[k], Source: "--set"})
	}
	return Decode("kiln.yaml", []byte(src), list)
}

func TestDecodeGoodConfig(t *testing.T) {
	cfg, err := decode(t, goodConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image.Entrypoint != "/app" || cfg.Image.User != "65532:65532" || cfg.Image.Output != "dist" || !slices.Equal(cfg.Image.Tags, []string{"latest"}) {
		t.Errorf("defaults not applied: %+v", cfg.Image)
	}
	if !slices.Equal(cfg.App.Flags, []string{"-trimpath"}) {
		t.Errorf("app.flags default = %v, want [-trimpath]", cfg.App.Flags)
	}
	if got := cfg.Image.Labels["org.opencontainers.image.Title"]; got != "Hello" {
		t.Errorf("label key case lost: %v", cfg.Image.Labels)
	}
	if got := cfg.TargetNames(); !slices.Equal(got, []string{"scratch", "static"}) {
		t.Errorf("targets = %v", got)
	}
	if !cfg.Targets["static"].Default || !slices.Equal(cfg.Targets["scratch"].Tags, []string{"timetzdata"}) {
		t.Errorf("target fields: %+v %+v", cfg.Targets["static"], cfg.Targets["scratch"])
	}
}

// Environment variables and --set arrive as strings; lists are comma-separated.
func TestDecodeStringsFromEnvironment(t *testing.T) {
	cfg, err := decode(t, goodConfig, map[string]string{"platforms": "linux/arm64, linux/amd64", "targets.static.default": "false"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Platforms, []string{"linux/arm64", "linux/amd64"}) {
		t.Errorf("platforms = %q", cfg.Platforms)
	}
	if cfg.Targets["static"].Default {
		t.Error(`"false" from the environment did not turn default off`)
	}
}

func TestDecodeErrors(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(goodConfig, old) {
			t.Fatalf("test setup: %q not in config", old)
		}
		return strings.Replace(goodConfig, old, new, 1)
	}
	tests := []struct {
		name, src string
		override  map[string]string
		key       string // the key the error must name
		line      int    // its line in the file, 0 when not from the file
		want      string // part of the problem or fix
	}{
		{"unknown top-level key", goodConfig + "libs: [x]\n", nil, "libs", 18, "unknown key"},
		{"typo inside a target", replace("    libc: none\n    base: scratch", "    libs: none\n    base: scratch"), nil, "targets.scratch.libs", 15, "known keys here: libc, base"},
		{"unknown key from --set", goodConfig, map[string]string{"image.repo": "x"}, "image.repo", 0, "unknown key"},
		{"list written as a string", replace("platforms: [linux/amd64, linux/arm64]", "platforms: linux/amd64"), nil, "platforms", 8, "write a list: [linux/amd64]"},
		{"ldflags as one string", replace("  main: ./cmd/hello", "  main: ./cmd/hello\n  ldflags: -s -w"), nil, "app.ldflags", 5, "expected a list"},
		{"bool that is not", replace("default: true", "default: maybe"), nil, "targets.static.default", 13, "expected a boolean"},
		{"mapping where a string belongs", replace("  name: hello", "  name: {a: b}"), nil, "app.name", 3, "expected a string"},
		{"version", replace("version: 1", "version: 2"), nil, "version", 1, "unsupported config version 2"},
		{"unknown libc", replace("libc: none\n    base: gcr", "libc: glbc\n    base: gcr"), nil, "targets.static.libc", 11, `unknown libc "glbc"`},
		{"missing libc", replace("    libc: none\n    base: scratch", "    base: scratch"), nil, "targets.scratch.libc", 0, "set libc: none"},
		{"base without digest", replace("nonroot@"+digest, "nonroot"), nil, "targets.static.base", 12, "kiln lock"},
		{"base with a bad digest", replace(digest, "sha256:abc"), nil, "targets.static.base", 12, "not a sha256 digest"},
		{"missing base", replace("    libc: none\n    base: scratch", "    libc: none"), nil, "targets.scratch.base", 0, "missing"},
		{"two defaults", replace("    base: scratch\n", "    base: scratch\n    default: true\n"), nil, "targets.static.default", 13, "mark only one target"},
		{"missing name", replace("  name: hello\n", ""), nil, "app.name", 0, "app needs a name"},
		{"missing main", replace("  main: ./cmd/hello\n", ""), nil, "app.main", 0, "which package to build"},
		{"bad platform", replace("linux/arm64]", "linux/sparc]"), nil, "platforms", 8, `unknown architecture "sparc"`},
		{"windows", replace("linux/arm64]", "windows/amd64]"), nil, "platforms", 8, "only linux images"},
		{"duplicate platform", replace("linux/arm64]", "linux/amd64]"), nil, "platforms", 8, "listed twice"},
		{"bad tag", goodConfig, map[string]string{"image.tags": "-bad"}, "image.tags", 0, "not a valid tag"},
		{"relative entrypoint", goodConfig, map[string]string{"image.entrypoint": "app"}, "image.entrypoint", 0, "absolute file path"},
		{"entrypoint is root", goodConfig, map[string]string{"image.entrypoint": "/"}, "image.entrypoint", 0, "absolute file path"},
		{"repository with a tag", goodConfig, map[string]string{"image.repository": "127.0.0.1:5000/hello@sha256:abc"}, "image.repository", 0, "not a repository"},
		{"app.env sets GOOS", replace("  main: ./cmd/hello", "  main: ./cmd/hello\n  env: [GOOS=darwin]"), nil, "app.env", 5, "set by kiln"},
		{"env entry without =", replace("    tags: [timetzdata]", "    tags: [timetzdata]\n    env: [FOO]"), nil, "targets.scratch.env", 18, "KEY=VALUE"},
		{"-o in flags", goodConfig, map[string]string{"app.flags": "-o,x"}, "app.flags", 0, "kiln chooses the output path"},
		{"-ldflags in flags", goodConfig, map[string]string{"app.flags": "-ldflags=-s"}, "app.flags", 0, "use app.ldflags"},
		{"upper-case target name", replace("  scratch:", "  Scratch:"), nil, "targets.Scratch", 14, "rename it to scratch"},
		{"no targets", strings.Split(goodConfig, "targets:")[0], nil, "targets", 0, "no targets"},
		{"not yaml", "version: [1\n", nil, "", 0, "not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.src, tt.override)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			if ce.File != "kiln.yaml" || ce.Key != tt.key || ce.Line != tt.line {
				t.Errorf("error names %s:%d %s, want kiln.yaml:%d %s (%v)", ce.File, ce.Line, ce.Key, tt.line, tt.key, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if tt.key != "" && ce.Fix == "" {
				t.Errorf("error %q gives no fix", err)
			}
		})
	}
}

func TestParseBase(t *testing.T) {
	tests := []struct {
		in                          string
		kind                        BaseKind
		name, path, refName, digest string
		tag                         string
		err                         string
	}{
		{in: "scratch", kind: BaseScratch, name: "scratch"},
		{in: "gcr.io/distroless/static-debian12:nonroot@" + digest, kind: BaseRegistry, name: "gcr.io/distroless/static-debian12:nonroot", tag: "nonroot", digest: digest},
		{in: "127.0.0.1:5000/bases/static@" + digest, kind: BaseRegistry, name: "127.0.0.1:5000/bases/static", digest: digest},
		{in: "127.0.0.1:5000/bases/static:1", kind: BaseRegistry, name: "127.0.0.1:5000/bases/static:1", tag: "1"},
		{in: "alpine", kind: BaseRegistry, name: "alpine"},
		{in: "oci:../../dist/bases:static@" + digest, kind: BaseLayout, name: "oci:../../dist/bases:static", path: "../../dist/bases", refName: "static", digest: digest},
		{in: "oci:/abs/layout@" + digest, kind: BaseLayout, name: "oci:/abs/layout", path: "/abs/layout", digest: digest},
		{in: "oci:@" + digest, err: "layout path is empty"},
		{in: "alpine@sha256:xyz", err: "not a sha256 digest"},
		{in: "Not A Ref", err: "not an image reference"},
	}
	for _, tt := range tests {
		b, err := ParseBase(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseBase(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseBase(%q): %v", tt.in, err)
			continue
		}
		if b.Kind != tt.kind || b.Name() != tt.name || b.Path != tt.path || b.RefName != tt.refName || b.Digest != tt.digest || b.Tag != tt.tag {
			t.Errorf("ParseBase(%q) = kind %d name %q path %q ref %q digest %q tag %q", tt.in, b.Kind, b.Name(), b.Path, b.RefName, b.Digest, b.Tag)
		}
		if tt.digest != "" && b.WithDigest(tt.digest) != tt.in {
			t.Errorf("WithDigest does not round-trip %q: %q", tt.in, b.WithDigest(tt.digest))
		}
	}
}

func TestBuildEnv(t *testing.T) {
	host := []string{
		"PATH=/usr/bin", "HOME=/root", "GOCACHE=/c", "GOMODCACHE=/m", "GOPROXY=https://proxy.example",
		"GOFLAGS=-buildvcs=false -race -mod=mod -gcflags=all=-N",
		"CGO_ENABLED=1", "GOARCH=386", "CC=clang", "CGO_CFLAGS=-O0", "LD_PRELOAD=/evil.so", "GOAMD64=v3", "AWS_SECRET_ACCESS_KEY=x",
	}
	tests := []struct {
		name    string
		row     Row
		want    []string
		notWant []string
	}{
		{
			name:    "static amd64 drops what would change the binary",
			row:     Row{Target: &Target{Name: "static", Libc: LibcNone}, Platform: Platform{OS: "linux", Arch: "amd64"}},
			want:    []string{"CGO_ENABLED=0", "GOARCH=amd64", "GOOS=linux", "GOCACHE=/c", "GOMODCACHE=/m", "GOPROXY=https://proxy.example", "GOFLAGS=-buildvcs=false -mod=mod", "HOME=/root", "PATH=/usr/bin"},
			notWant: []string{"CC", "CGO_CFLAGS", "LD_PRELOAD", "GOAMD64", "AWS_SECRET_ACCESS_KEY", "GOARM"},
		},
		{
			name: "arm/v7 sets GOARM",
			row:  Row{Target: &Target{Name: "static", Libc: LibcNone}, Platform: Platform{OS: "linux", Arch: "arm", Variant: "v7"}},
			want: []string{"GOARCH=arm", "GOARM=7", "CGO_ENABLED=0"},
		},
		{
			name: "user env goes on top, later wins",
			row:  Row{Target: &Target{Name: "static", Libc: LibcNone, Env: []string{"GOAMD64=v2", "GOPROXY=off", "GOAMD64=v3"}}, Platform: Platform{OS: "linux", Arch: "amd64"}},
			want: []string{"GOAMD64=v3", "GOPROXY=off"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.row.BuildEnv(host)
			if !slices.IsSorted(env) {
				t.Errorf("env is not sorted: %q", env)
			}
			for _, w := range tt.want {
				if !slices.Contains(env, w) {
					t.Errorf("missing %s in %q", w, env)
				}
			}
			for _, k := range tt.notWant {
				for _, kv := range env {
					if strings.HasPrefix(kv, k+"=") {
						t.Errorf("%s leaked into the build env", kv)
					}
				}
			}
			keys := map[string]bool{}
			for _, kv := range env {
				k, _, _ := strings.Cut(kv, "=")
				if keys[k] {
					t.Errorf("%s appears twice", k)
				}
				keys[k] = true
			}
		})
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(goodConfig, "gcr.io/distroless/static-debian12:nonroot@", "oci:bases:static@", 1)
	cfg, err := decode(t, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = filepath.Join(dir, "kiln.yaml")

	p, err := Expand(cfg, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range p.Rows {
		ids = append(ids, r.ID())
	}
	if want := []string{"scratch-linux-amd64", "scratch-linux-arm64", "static-linux-amd64", "static-linux-arm64"}; !slices.Equal(ids, want) {
		t.Errorf("rows = %v, want %v", ids, want)
	}
	if p.Dir != dir || p.Output != filepath.Join(dir, "dist") {
		t.Errorf("paths not resolved against the config's directory: %s %s", p.Dir, p.Output)
	}
	if got := p.Targets[1].Base.Path; got != filepath.Join(dir, "bases") {
		t.Errorf("layout base path = %s, want it resolved against the config's directory", got)
	}
	args := p.BuildArgs(p.Rows[0], "/out/app")
	if want := []string{"build", "-o", "/out/app", "-trimpath", "-tags", "timetzdata", "./cmd/hello"}; !slices.Equal(args, want) {
		t.Errorf("build args = %q, want %q", args, want)
	}

	p, err = Expand(cfg, Selection{Targets: []string{"static"}, Platforms: []string{"linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 1 || p.Rows[0].ID() != "static-linux-arm64" {
		t.Errorf("selection gave %d rows: %+v", len(p.Rows), p.Rows)
	}
	for _, sel := range []Selection{{Targets: []string{"nope"}}, {Platforms: []string{"linux/s390x"}}} {
		var se *SelectionError
		if _, err := Expand(cfg, sel); !errors.As(err, &se) || se.Fix == "" || strings.Contains(err.Error(), "--") {
			t.Errorf("selection %+v: want a SelectionError with a fix and no flag name, got %v", sel, err)
		}
	}

	if !HasGoMod(p) {
		t.Error("the module has a go.mod")
	}
	cfg.App.Dir = "missing"
	if p, err = Expand(cfg, Selection{}); err != nil || HasGoMod(p) {
		t.Errorf("app.dir without go.mod: %v, HasGoMod %v", err, err == nil && HasGoMod(p))
	}
}

// The build finds the go command's caches and go env file where the user's
// own go command does, without kiln asking `go env` first.
func TestBuildEnvKeepsTheUsersGoCaches(t *testing.T) {
	xdg := t.TempDir()
	var host []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "GOCACHE" && k != "GOMODCACHE" && k != "GOENV" && k != "GOPATH" {
			host = append(host, kv)
		}
	}
	host = append(host, "XDG_CACHE_HOME="+xdg+"/cache", "XDG_CONFIG_HOME="+xdg+"/config")
	if err := os.MkdirAll(xdg+"/config/go", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xdg+"/config/go/env", []byte("GOMODCACHE="+xdg+"/mod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	goEnv := func(env []string) string {
		cmd := exec.Command("go", "env", "GOCACHE", "GOMODCACHE")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	row := Row{Target: &Target{Name: "static", Libc: LibcNone}, Platform: Platform{OS: "linux", Arch: "amd64"}}
	want := xdg + "/cache/go-build\n" + xdg + "/mod\n"
	if got := goEnv(host); got != want {
		t.Fatalf("host go env = %q, want %q", got, want)
	}
	if got := goEnv(row.BuildEnv(host)); got != want {
		t.Errorf("build go env = %q, want the host's %q", got, want)
	}
}

// FuzzDecodeAndPlan feeds arbitrary bytes through Decode, Expand and
// Decide: bad config must come back as a *ConfigError, never a panic.
func FuzzDecodeAndPlan(f *testing.F) {
	f.Add(goodConfig)
	f.Add(strings.Replace(goodConfig, "    tags: [timetzdata]\n", "    libc: musl\n    link: static\n    cc: ' '\n", 1))
	f.Add("version: 1\napp: {name: a, main: .}\ntargets:\n  g: {libc: glibc, base: 'oci:b@" + digest + "', builder: container, builder_image: 'golang@" + digest + "', verify: {run_timeout: x}}\n")
	f.Add("version: 1\napp: {name: a, main: .}\nverify: {require: [certs], expect_exit: 300}\nsign: {key: k, keyless: true}\ntargets: {s: {libc: none, base: scratch}}\n")
	f.Add("version: 1\napp: &a {name: a, main: .}\ntargets:\n  x: &t {libc: musl, link: static, base: scratch}\n  y: {<<: [*t, *a], libc: none}\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := Decode(filepath.Join(dir, "kiln.yaml"), []byte(src), nil)
		var ce *ConfigError
		if err != nil {
			if !errors.As(err, &ce) {
				t.Fatalf("Decode: %v (%T) is not a *ConfigError", err, err)
			}
			return
		}
		p, err := Expand(cfg, Selection{})
		var se *SelectionError
		if err != nil {
			if !errors.As(err, &ce) && !errors.As(err, &se) {
				t.Fatalf("Expand: %v (%T) is not a *ConfigError", err, err)
			}
			return
		}
		if _, err := Decide(p, goodFacts(p)); err != nil && !errors.As(err, &ce) {
			t.Fatalf("Decide: %v (%T) is not a *ConfigError", err, err)
		}
	})
}

// What KILN_* and --set give is decoded like the file, and an error about
// it names no line: the file's line shows a value that is not the one used.
func TestOverridesAndTheirLines(t *testing.T) {
	cfg, err := decode(t, goodConfig, map[string]string{
		"app.name":                      "other",
		"targets.static.verify.run":     "0",
		"targets.new.libc":              "none",
		"targets.new.base":              "scratch",
		"image.labels.org.example.Team": "kiln",
		"verify.expect_exit":            "3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.App.Name != "other" || *cfg.Targets["static"].Verify.Run || cfg.Targets["new"].Base != "scratch" || *cfg.Verify.ExpectExit != 3 {
		t.Errorf("overrides not applied: %+v %+v", cfg.App, cfg.Targets["static"].Verify)
	}
	if cfg.Image.Labels["org.example.Team"] != "kiln" || cfg.Image.Labels["org.opencontainers.image.Title"] != "Hello" {
		t.Errorf("labels = %v", cfg.Image.Labels)
	}
	if cfg.Line("app.name") != 0 || cfg.Line("app.main") != 4 || cfg.Line("targets.static") != 10 || cfg.Line("targets.new.base") != 0 {
		t.Errorf("lines: app.name %d app.main %d targets.static %d targets.new.base %d", cfg.Line("app.name"), cfg.Line("app.main"), cfg.Line("targets.static"), cfg.Line("targets.new.base"))
	}
	if len(cfg.Overrides) != 6 {
		t.Errorf("overrides recorded: %+v", cfg.Overrides)
	}
	for _, tt := range []struct{ key, value, want string }{
		{"targets.static", "x", "is a mapping, not a value"},
		{"targets.static.default", "maybe", `expected a boolean, got "maybe"`},
		{"verify.dns_load", "many", `expected an integer, got "many"`},
	} {
		var ce *ConfigError
		if _, err := decode(t, goodConfig, map[string]string{tt.key: tt.value}); !errors.As(err, &ce) || ce.Key != tt.key || ce.Line != 0 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%s: got %v, want %q on %s without a line", tt.key, tt.value, err, tt.want, tt.key)
		}
	}
}

// YAML's own ways of sharing settings work as in any YAML reader; a key
// written twice is an error, not a silent choice.
func TestDecodeAnchorsAndMergeKeys(t *testing.T) {
	src := "version: 1\napp: {name: a, main: .}\nplatforms: &pl [linux/amd64]\ntargets:\n" +
		"  a: &common {libc: musl, link: static, base: scratch, platforms: *pl}\n" +
		"  b:\n    <<: *common\n    link: dynamic\n    base: 'oci:b@" + digest + "'\n"
	cfg, err := decode(t, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Targets["b"]
	if b.Libc != "musl" || b.Link != "dynamic" || !slices.Equal(b.Platforms, []string{"linux/amd64"}) {
		t.Errorf("merged target = %+v", b)
	}
	var ce *ConfigError
	if _, err := decode(t, goodConfig+"platforms: [linux/arm64]\n", nil); !errors.As(err, &ce) || ce.Key != "platforms" || ce.Line != 18 || !strings.Contains(err.Error(), "written twice (also at line 8)") {
		t.Errorf("a key written twice: got %v", err)
	}
}

func TestKeys(t *testing.T) {
	keys := Keys([]byte(goodConfig))
	for _, want := range []string{"version", "app.name", "image.repository", "platforms", "verify.run_timeout", "sign.key", "targets.static.base", "targets.scratch.verify.require"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys lacks %s", want)
		}
	}
	for _, k := range keys {
		if k == "image.labels" || strings.HasPrefix(k, "targets.") && !strings.HasPrefix(k, "targets.static.") && !strings.HasPrefix(k, "targets.scratch.") {
			t.Errorf("Keys has %s", k)
		}
	}
}
