package targets

import (
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Plan is what a release will build: every selected target × platform,
// with paths resolved against the config file's directory. Expand makes
// the rows a config asks for; Decide returns them decided from the facts:
// each row's toolchain located, its cgo packages, warnings and refusals.
// A Plan is never changed once made.
type Plan struct {
	Config    *Config
	Dir       string // the Go module root, absolute
	Output    string // image.output, absolute
	Targets   []*Target
	Platforms []Platform
	Rows      []Row
}

// Row is one `go build`: a target on a platform, with the C toolchain it
// builds with and, once decided, the cgo packages it links, what is worth
// a warning and why it cannot be built, if it cannot.
type Row struct {
	Target    *Target
	Platform  Platform
	Toolchain Toolchain    // zero for libc: none; located by Decide
	Cgo       []CgoPackage // set by Decide
	Warnings  []string     // set by Decide
	Refusals  []*ConfigError
}

// ID names a row in progress lines and file names: static-linux-amd64.
func (r Row) ID() string {
	return r.Target.Name + "-" + strings.ReplaceAll(r.Platform.String(), "/", "-")
}

// CGO reports whether the row builds with CGO_ENABLED=1.
func (r Row) CGO() bool { return r.Target.Libc != LibcNone }

// Selection narrows a plan to some targets and platforms (the --target and
// --platform flags); empty means all.
type Selection struct {
	Targets   []string
	Platforms []string
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
