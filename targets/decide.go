package targets

// This file is SPEC §2 as code: which libc × link × base × app combinations
// kiln builds, and why it refuses the rest before compiling anything. It is
// the only place a row is refused. Expand turns a config into the rows it
// asks for and refuses what the config alone rules out; Decide takes those
// rows and the Facts gathered about the machine, the app and the bases, and
// decides the rest. Both are pure: no I/O, the same inputs give the same
// plan and the same first refusal.

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
)

// Expand turns cfg into the rows a release builds: each selected target on
// each of its platforms, relative paths resolved against the directory of
// cfg.File. It refuses combinations the config alone rules out (a
// *ConfigError) and a selection that names what the config does not have
// (a *SelectionError).
func Expand(cfg *Config, sel Selection) (*Plan, error) {
	base := filepath.Dir(cfg.File)
	p := &Plan{Config: cfg, Dir: absJoin(base, cfg.App.Dir), Output: absJoin(base, cfg.Image.Output)}
	selErr := func(field, fix, format string, args ...any) error {
		return &SelectionError{File: cfg.File, Field: field, Problem: fmt.Sprintf(format, args...), Fix: fix}
	}
	for _, s := range sel.Targets {
		if _, ok := cfg.Targets[s]; !ok {
			return nil, selErr("targets", "use one of "+strings.Join(cfg.TargetNames(), ", "), "no target named %q", s)
		}
	}
	for _, s := range sel.Platforms {
		if !slices.Contains(cfg.Platforms, s) {
			return nil, selErr("platforms", "use one of "+strings.Join(cfg.Platforms, ", ")+", or add it to platforms", "%q is not in platforms", s)
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
			CC:      tc.CC,
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
			p.Rows = append(p.Rows, Row{Target: t, Platform: pl})
		}
		if len(p.Rows) > rows { // a target whose platforms were all deselected is not built
			p.Targets = append(p.Targets, t)
		}
	}
	if len(p.Rows) == 0 {
		return nil, selErr("platforms", "select a platform that some target lists", "%s", "no target is built for the selected platforms")
	}
	return p, nil
}

// checkTarget refuses combinations that cannot work, judged from the config
// alone. What needs the base image's files, the app's packages or the
// machine's compilers is judged by Decide.
func checkTarget(cfg *Config, t *Target, tc *TargetConfig) error {
	key := "targets." + t.Name
	bad := func(sub, fix, format string, args ...any) error {
		return cfg.Errorf(key+sub, fix, format, args...)
	}
	switch tc.Builder {
	case "", "host":
		if tc.BuilderImage != "" || tc.BuilderRuntime != "" || tc.BuilderNetwork {
			return bad(".builder_image", "remove them, or set builder: container", "builder_image, builder_runtime and builder_network apply to builder: container")
		}
	case "container":
		if tc.BuilderImage == "" {
			return bad(".builder_image", "set builder_image, e.g. golang:1.22-alpine@sha256:<64 hex>", "builder: container needs an image to build in")
		}
		img, err := ParseBase(tc.BuilderImage)
		if err != nil || img.Kind != BaseRegistry {
			return bad(".builder_image", "write an image reference, e.g. golang:1.22-alpine@sha256:<64 hex>", "%q is not an image reference", tc.BuilderImage)
		}
		if !img.Pinned() {
			return bad(".builder_image", "pin it: docker/podman image inspect --format '{{.Digest}}' or crane digest give the digest", "%q is not pinned by digest; the toolchain could change under you", tc.BuilderImage)
		}
		switch tc.BuilderRuntime {
		case "", "auto", "docker", "podman":
		default:
			return bad(".builder_runtime", "use auto, docker or podman", "unknown runtime %q", tc.BuilderRuntime)
		}
		t.Builder = Builder{Container: true, Image: img, Runtime: cmp.Or(tc.BuilderRuntime, "auto"), Network: tc.BuilderNetwork}
	default:
		return bad(".builder", "use host or container", "unknown builder %q", tc.Builder)
	}
	switch t.Link {
	case LinkDynamic:
	case LinkStatic:
		switch t.Libc {
		case LibcNone:
			return bad(".link", "remove link", "link applies to cgo targets; libc: none is always static")
		case LibcGlibc:
			return bad(".link", "use libc: musl with link: static for a fully static cgo binary, or link: dynamic on a glibc base",
				"a static glibc binary breaks NSS and dlopen: DNS through nsswitch.conf and user/group lookups fail or load a host-mismatched libc at run time")
		}
	default:
		return bad(".link", "use dynamic or static", "unknown link mode %q", t.Link)
	}
	if t.Libc == LibcNone && tc.CC != "" {
		return bad(".cc", "remove cc", "cc applies to cgo targets; libc: none builds with CGO_ENABLED=0")
	}
	if t.Base.Kind == BaseScratch {
		switch {
		case t.Libc == LibcGlibc:
			return bad(".base", "use a glibc base (distroless/base, debian), or libc: musl with link: static on scratch",
				"scratch has no glibc loader or libraries, so a glibc binary cannot start on it (`exec /app: no such file or directory`)")
		case t.Libc == LibcMusl && t.Link != LinkStatic:
			return bad(".base", "add link: static to build a fully static musl binary, or use an alpine base",
				"scratch has no musl loader, so a dynamic musl binary cannot start on it")
		}
	}
	return nil
}

// Decide returns the plan p expanded, decided from the facts f: each row's
// C compiler located, its cgo packages, its warnings and its refusals. The
// error is the first problem, in a fixed order whatever order the facts
// were gathered in: the module, then each row's compiler, then each row's
// cgo packages, then each row's base and builder. It is a refusal
// (*ConfigError), or a fact that could not be gathered, as it was.
func Decide(p *Plan, f *Facts) (*Plan, error) {
	out := *p
	out.Rows = slices.Clone(p.Rows)
	if !f.GoMod {
		return &out, p.Config.Errorf("app.dir", "point app.dir at the Go module root, relative to the config file", "%s has no go.mod", p.Dir)
	}
	d := &decider{plan: &out, facts: f}
	for i := range out.Rows {
		d.toolchain(&out.Rows[i])
	}
	for i := range out.Rows {
		d.cgo(&out.Rows[i])
	}
	for i := range out.Rows {
		d.base(&out.Rows[i])
	}
	if len(d.problems) > 0 {
		return &out, d.problems[0]
	}
	return &out, nil
}

// decider records the problems of one Decide in the order it finds them.
type decider struct {
	plan     *Plan
	facts    *Facts
	problems []error
}

// refuse records a refusal of row r at the config key.
func (d *decider) refuse(r *Row, key, fix, format string, args ...any) {
	err := d.plan.Config.Errorf(key, fix, format, args...)
	r.Refusals = append(r.Refusals, err)
	d.problems = append(d.problems, err)
}

// fact records a fact's error: a refusal at key when the config names
// something that is not there, else the error as it is.
func (d *decider) fact(r *Row, err error, key string) {
	var rf interface{ Refusal() (problem, fix string) }
	if !errors.As(err, &rf) {
		d.problems = append(d.problems, err)
		return
	}
	problem, fix := rf.Refusal()
	d.refuse(r, key, fix, "%s", problem)
}

// toolchain picks the row's C compiler and refuses the row when it is not
// installed: plan names the package rather than letting go build fail.
func (d *decider) toolchain(r *Row) {
	t := r.Target
	if t.Builder.Container {
		// The builder image brings its own C compiler (its default cc, or
		// the target's cc key); the host's is not involved.
		r.Toolchain = Toolchain{CC: t.CC, Source: "the builder image"}
		return
	}
	tc, err := ChooseToolchain(t.Libc, r.Platform, d.facts.HostArch, t.CC)
	if err != nil {
		d.refuse(r, "targets."+t.Name+".libc", "build "+r.Platform.String()+" with libc: none, or set cc: for this target", "%s", err.Error())
		return
	}
	if t.Libc == LibcNone {
		return
	}
	r.Toolchain = tc.located(d.facts.Tools[tc.Command()])
	if r.Toolchain.Missing {
		d.refuse(r, "targets."+t.Name, "install the "+tc.Source+", or set cc: to a compiler you have",
			"%s on %s needs the C compiler %q, which is not installed", t.Libc, r.Platform, tc.Command())
	}
}

// cgo refuses a libc: none row whose app needs cgo: such a binary either
// does not compile or compiles a stub that fails at run time.
func (d *decider) cgo(r *Row) {
	l := d.facts.Cgo[r.ID()]
	if l.Err != nil {
		main := d.plan.Config.App.Main
		d.refuse(r, "app.main", "make `go list "+main+"` work in "+d.plan.Dir, "%v", l.Err)
		return
	}
	r.Cgo = l.Packages
	switch {
	case r.Target.Libc == LibcNone && len(l.Packages) > 0:
		names := make([]string, len(l.Packages))
		for i, c := range l.Packages {
			names[i] = c.String()
		}
		d.refuse(r, "targets."+r.Target.Name+".libc", "build this target with libc: glibc or libc: musl (link: static for scratch), or replace those packages with pure-Go ones",
			"libc: none builds with CGO_ENABLED=0, but the app needs cgo: %s", strings.Join(names, "; "))
	case r.Target.Libc != LibcNone && len(l.Packages) == 0:
		r.Warnings = append(r.Warnings, "no package outside the standard library uses cgo; libc: none would give a static binary that runs on any base")
	}
}

// base checks what the row needs from its base and its builder: the base
// has the row's platform, the builder runtime and image are here, a
// dynamic cgo binary finds its loader in the base, and the toolchain's glibc
// is not newer than the base's (the classic `GLIBC_2.34 not found`: a
// warning, since the binary's actual needs are checked after compiling).
func (d *decider) base(r *Row) {
	t := r.Target
	baseKey := "targets." + t.Name + ".base"
	bf, ok := d.facts.Bases[t.Base.Raw]
	switch {
	case !ok:
		d.problems = append(d.problems, fmt.Errorf("internal: no facts about the base %s", t.Base.Raw))
		return
	case bf.Err != nil:
		d.fact(r, bf.Err, baseKey)
		return
	}
	img, ok := bf.Images[r.Platform.String()]
	switch {
	case t.Base.Kind == BaseScratch:
	case !ok:
		d.refuse(r, baseKey, "choose a base built for "+r.Platform.String()+", or list only the platforms it has in targets."+t.Name+".platforms",
			"base %s has no %s image (it has: %s)", t.Base.Raw, r.Platform, strings.Join(bf.Platforms, ", "))
		return
	case img.Err != nil:
		d.problems = append(d.problems, img.Err)
		return
	}
	if b := t.Builder; b.Container {
		rt := d.facts.Runtimes[b.Runtime]
		if rt.Err != nil {
			d.fact(r, rt.Err, "targets."+t.Name+".builder_runtime")
			return
		}
		if err := d.facts.BuilderImages[BuilderImageKey(rt.Name, b.Image.Raw)]; err != nil {
			d.fact(r, err, "targets."+t.Name+".builder_image")
			return
		}
	}
	if !r.CGO() || img.Files == nil {
		return // static rows need nothing from the base; scratch with cgo is refused from the config
	}
	if want := r.Loader(); want != "" && !img.Files.Loaders[want] {
		var has []string
		for _, libc := range []Libc{LibcGlibc, LibcMusl} {
			if l := Loader(libc, r.Platform); l != "" && img.Files.Loaders[l] {
				has = append(has, fmt.Sprintf("the %s loader %s", libc, l))
			}
		}
		what := "no libc loader at all (a static-only base)"
		if len(has) > 0 {
			what = strings.Join(has, " and ")
		}
		fix := "use a base with glibc (distroless/base, debian:*-slim), or build libc: musl for alpine"
		if t.Libc == LibcMusl {
			fix = "use a musl base (alpine), or add link: static to run on any base"
		}
		d.refuse(r, baseKey, fix, "base %s has no %s loader %s for %s; it has %s", t.Base.Name(), t.Libc, want, r.Platform, what)
		return
	}
	if t.Libc == LibcGlibc {
		if w := glibcSkew(r.Toolchain.LibcSO, d.facts.Glibc[r.Toolchain.LibcSO], img.Files); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
	}
}

// glibcSkew warns when the glibc the toolchain links against (at libcSO,
// defining up to hostVer) is newer than the base's: the binary may need
// symbol versions the base lacks.
func glibcSkew(libcSO, hostVer string, base *BaseFiles) string {
	if base.GlibcVersion == "" || hostVer == "" || semver.Compare(glibcSemver(hostVer), glibcSemver(base.GlibcVersion)) <= 0 {
		return ""
	}
	return fmt.Sprintf("the toolchain links against %s (%s) but the base has %s (%s): a binary that uses newer symbols fails at start with `version %s not found`; verification checks the binary's actual needs",
		hostVer, libcSO, base.GlibcVersion, base.Glibc, hostVer)
}

// glibcSemver writes GLIBC_2.34 as v2.34, which semver orders numerically.
func glibcSemver(v string) string { return "v" + strings.TrimPrefix(v, "GLIBC_") }

// Decision says in one line what kiln will build for the row and why.
func (r Row) Decision() string {
	where := ""
	if r.Target.Builder.Container {
		where = " inside " + r.Target.Builder.Image.Raw
	}
	cc := r.Toolchain.CC
	if cc == "" {
		cc = "the image's cc"
	}
	switch {
	case r.Target.Libc == LibcNone:
		return "static Go binary (CGO_ENABLED=0)" + where
	case r.Target.Link == LinkStatic:
		return fmt.Sprintf("fully static cgo binary against musl with %s%s (-linkmode external -extldflags -static)", cc, where)
	}
	return fmt.Sprintf("dynamic cgo binary against %s with %s%s; the image must provide %s", r.Target.Libc, cc, where, r.Loader())
}
