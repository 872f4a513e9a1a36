package targets

import (
	"cmp"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// Plan is what a release will build: every selected target × platform,
// with paths resolved against the config file's directory.
type Plan struct {
	Config    *Config
	Dir       string // the Go module root, absolute
	Output    string // image.output, absolute
	Targets   []*Target
	Platforms []Platform
	Rows      []Row
}

// Row is one `go build`: a target on a platform, with the C toolchain it
// builds with and, after Analyze, the cgo packages it links.
type Row struct {
	Target    *Target
	Platform  Platform
	Toolchain Toolchain    // zero for libc: none
	Cgo       []CgoPackage // set by Analyze
	Warnings  []string     // set by Analyze and by base inspection
}

// ID names a row in progress lines and file names: static-linux-amd64.
func (r Row) ID() string {
	return r.Target.Name + "-" + strings.ReplaceAll(r.Platform.String(), "/", "-")
}

// CGO reports whether the row builds with CGO_ENABLED=1.
func (r Row) CGO() bool { return r.Target.Libc != LibcNone }

// Selection narrows a plan to some targets and platforms (the --target and
// --platform flags); empty means all. HostArch and Look describe the build
// machine; zero values mean this machine (runtime.GOARCH, LookTool).
type Selection struct {
	Targets   []string
	Platforms []string
	HostArch  string
	Look      func(string) (string, error)
}

// NewPlan expands cfg into rows, resolving relative paths against the
// directory of cfg.File. It refuses what this kiln cannot build.
func NewPlan(cfg *Config, sel Selection) (*Plan, error) {
	base := filepath.Dir(cfg.File)
	p := &Plan{Config: cfg, Dir: absJoin(base, cfg.App.Dir), Output: absJoin(base, cfg.Image.Output)}
	if st, err := os.Stat(filepath.Join(p.Dir, "go.mod")); err != nil || st.IsDir() {
		return nil, cfg.Errorf("app.dir", "point app.dir at the Go module root, relative to the config file", "%s has no go.mod", p.Dir)
	}

	for _, s := range sel.Targets {
		if _, ok := cfg.Targets[s]; !ok {
			return nil, cfg.Errorf("--target", "use one of "+strings.Join(cfg.TargetNames(), ", "), "no target named %q", s)
		}
	}
	for _, s := range sel.Platforms {
		if !slices.Contains(cfg.Platforms, s) {
			return nil, cfg.Errorf("--platform", "use one of "+strings.Join(cfg.Platforms, ", ")+", or add it to platforms", "%q is not in platforms", s)
		}
	}
	for _, s := range cfg.Platforms {
		if len(sel.Platforms) > 0 && !slices.Contains(sel.Platforms, s) {
			continue
		}
		pl, err := ParsePlatform(s)
		if err != nil { // validated already; kept for callers that build Configs by hand
			return nil, cfg.Errorf("platforms", "", "%s", err.Error())
		}
		p.Platforms = append(p.Platforms, pl)
	}

	hostArch, look := sel.HostArch, sel.Look
	if hostArch == "" {
		hostArch = runtime.GOARCH
	}
	if look == nil {
		look = LookTool
	}
	look = lookOnce(look)
	for _, n := range cfg.TargetNames() {
		if len(sel.Targets) > 0 && !slices.Contains(sel.Targets, n) {
			continue
		}
		tc := cfg.Targets[n]
		b, err := ParseBase(tc.Base)
		if err != nil {
			return nil, cfg.Errorf("targets."+n+".base", "", "%s", err.Error())
		}
		if b.Kind == BaseLayout && !filepath.IsAbs(b.Path) {
			b.Path = filepath.Join(base, b.Path)
		}
		t := &Target{
			Name:    n,
			Libc:    Libc(tc.Libc),
			Base:    b,
			Default: tc.Default,
			Link:    cmp.Or(tc.Link, LinkDynamic),
			Tags:    concat(cfg.App.Tags, tc.Tags),
			Ldflags: concat(cfg.App.Ldflags, tc.Ldflags),
			Env:     concat(cfg.App.Env, tc.Env),
			Policy:  tc.Verify.Apply(cfg.Verify.Apply(DefaultPolicy())),
		}
		if err := checkTarget(cfg, t, tc); err != nil {
			return nil, err
		}
		rows := len(p.Rows)
		for _, pl := range p.Platforms {
			if len(tc.Platforms) > 0 && !slices.Contains(tc.Platforms, pl.String()) {
				continue
			}
			row := Row{Target: t, Platform: pl}
			if t.Builder.Container {
				// The builder image brings its own C compiler (its default
				// cc, or the target's cc key); the host's is not involved.
				row.Toolchain = Toolchain{CC: tc.CC, Source: "the builder image"}
				p.Rows = append(p.Rows, row)
				continue
			}
			if row.Toolchain, err = SelectToolchain(t.Libc, pl, hostArch, tc.CC, look); err != nil {
				return nil, cfg.Errorf("targets."+n+".libc", "build "+pl.String()+" with libc: none, or set cc: for this target", "%s", err.Error())
			}
			if row.Toolchain.Missing {
				return nil, cfg.Errorf("targets."+n, "install the "+row.Toolchain.Source+", or set cc: to a compiler you have",
					"%s on %s needs the C compiler %q, which is not installed", t.Libc, pl, strings.Fields(row.Toolchain.CC)[0])
			}
			p.Rows = append(p.Rows, row)
		}
		if len(p.Rows) > rows { // a target whose platforms were all deselected is not built
			p.Targets = append(p.Targets, t)
		}
	}
	if len(p.Rows) == 0 {
		return nil, cfg.Errorf("--platform", "select a platform that some target lists", "%s", "no target is built for the selected platforms")
	}
	return p, nil
}

func absJoin(base, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

// lookOnce asks look about each tool once: rows of several targets need
// the same compiler, and LookTool may start npm to find zig.
func lookOnce(look func(string) (string, error)) func(string) (string, error) {
	type answer struct {
		path string
		err  error
	}
	seen := map[string]answer{}
	return func(name string) (string, error) {
		a, ok := seen[name]
		if !ok {
			a.path, a.err = look(name)
			seen[name] = a
		}
		return a.path, a.err
	}
}

func concat(a, b []string) []string {
	return append(append([]string(nil), a...), b...)
}

// passthroughEnv are the host variables a build may see: where Go and its
// caches live, how to reach modules, and nothing that changes what is built.
// With HOME, the XDG directories and GOENV, the go command finds the same
// caches and go env file as the user's own `go build`.
var passthroughEnv = []string{
	"PATH", "HOME", "TMPDIR", "USER", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
	"GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "GOENV", "GOTOOLCHAIN", "GOTELEMETRY",
	"GOPROXY", "GONOPROXY", "GOPRIVATE", "GOSUMDB", "GONOSUMDB", "GONOSUMCHECK", "GOINSECURE", "GOAUTH", "GOVCS",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSH_COMMAND", "GIT_CONFIG_GLOBAL", "SOURCE_DATE_EPOCH",
}

// keptGOFLAGS are the GOFLAGS entries honoured from the host: they change how
// modules and VCS stamps are read, not what the compiler emits. Anything else
// (-race, -cover, -gcflags, …) is dropped so a stray CI variable cannot change
// the image.
var keptGOFLAGS = []string{"-buildvcs", "-mod", "-modcacherw", "-modfile"}

// BuildEnv returns the complete environment for the row's `go build`: the
// allowed host variables, then what the target and platform decide, then the
// user's app.env and target env on top (later entries win). The result is
// sorted so that it reads the same on every run.
func (r Row) BuildEnv(host []string) []string {
	env := map[string]string{}
	for _, kv := range host {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case slices.Contains(passthroughEnv, k):
			env[k] = v
		case k == "GOFLAGS":
			if kept := filterGOFLAGS(v); kept != "" {
				env[k] = kept
			}
		}
	}
	env["GOOS"] = r.Platform.OS
	env["GOARCH"] = r.Platform.Arch
	if r.Platform.Arch == "arm" {
		env["GOARM"] = strings.TrimPrefix(r.Platform.Variant, "v")
	}
	if r.CGO() {
		env["CGO_ENABLED"] = "1"
		if r.Toolchain.CC != "" {
			env["CC"] = r.Toolchain.CC
		}
	} else {
		env["CGO_ENABLED"] = "0"
	}
	for _, kv := range r.Target.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func filterGOFLAGS(v string) string {
	var kept []string
	for _, f := range strings.Fields(v) {
		flag, _, _ := strings.Cut(f, "=")
		if slices.Contains(keptGOFLAGS, "-"+strings.TrimLeft(flag, "-")) {
			kept = append(kept, f)
		}
	}
	return strings.Join(kept, " ")
}

// BuildArgs returns the arguments of `go build` for the row, writing the
// binary to out. The package is built from the module root (Plan.Dir).
func (p *Plan) BuildArgs(r Row, out string) []string {
	args := []string{"build", "-o", out}
	args = append(args, p.Config.App.Flags...)
	if len(r.Target.Tags) > 0 {
		args = append(args, "-tags", strings.Join(r.Target.Tags, ","))
	}
	ldflags := r.Target.Ldflags
	if r.Target.Link == LinkStatic {
		ldflags = append(slices.Clone(ldflags), "-linkmode", "external", "-extldflags", "-static")
	}
	if len(ldflags) > 0 {
		// Joined as written: go build splits -ldflags like a shell, so an
		// item "-X main.version=1.0" is two flags, and values with spaces
		// are quoted by the user: -X 'main.motd=hello world'.
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	return append(args, p.Config.App.Main)
}
