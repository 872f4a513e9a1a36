package verify

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/kilnbuild/kiln/targets"
)

// Each check of SPEC §4 is one method here, appending one finding.

// checkArch: the binary's ELF machine matches the platform.
func (s *subject) checkArch(rep *Report) {
	want := s.in.Platform.Arch
	if s.elf.Arch != want {
		rep.add("elf.arch", Fail, "%s is %s %s (%s) but the image is %s", s.binary, s.elf.Class, s.elf.Machine, orUnknown(s.elf.Arch), s.in.Platform)
		return
	}
	rep.add("elf.arch", Pass, "%s %s matches %s", s.elf.Class, s.elf.Machine, s.in.Platform)
}

// checkLinkMode: static or dynamic, as the target requires.
func (s *subject) checkLinkMode(rep *Report) {
	mode := "static"
	if !s.elf.Static {
		mode = "dynamic (PT_INTERP " + s.elf.Interp + ", NEEDED " + orNone(strings.Join(s.elf.Needed, " ")) + ")"
	}
	switch {
	case s.in.Libc == "":
		rep.add("link.mode", Pass, "%s", mode)
	case s.expectStatic() && !s.elf.Static:
		rep.add("link.mode", Fail, "the target (libc %s, link %s) must be static, but the binary is %s", s.in.Libc, cmp.Or(s.in.Link, "dynamic"), mode)
	case !s.expectStatic() && s.elf.Static:
		rep.add("link.mode", Fail, "the target (libc %s) must link dynamically against %s, but the binary is static", s.in.Libc, s.in.Libc)
	default:
		rep.add("link.mode", Pass, "%s, as libc %s, link %s requires", mode, s.libc, cmp.Or(s.in.Link, "dynamic"))
	}
}

// checkInterp: the PT_INTERP loader exists in the image (symlinks resolved
// inside it) and is an ELF object of the binary's architecture. It returns
// the loader for the library search.
func (s *subject) checkInterp(rep *Report) *loaded {
	if s.elf.Interp == "" {
		rep.add("link.interp", Skip, "static binary: no PT_INTERP")
		return nil
	}
	real, e, err := s.fsys.Resolve(s.elf.Interp)
	if err != nil {
		rep.add("link.interp", Fail, "PT_INTERP %s is not in the image (%v)", s.elf.Interp, err)
		return nil
	}
	if e.Type != TypeFile {
		rep.add("link.interp", Fail, "PT_INTERP %s is a %s in the image, not a file", s.elf.Interp, e.Type)
		return nil
	}
	data, err := s.fsys.readShared(real)
	if err != nil {
		rep.add("link.interp", Fail, "PT_INTERP %s → %s cannot be read: %v", s.elf.Interp, real, err)
		return nil
	}
	ld, err := ReadELF(data)
	if err != nil {
		rep.add("link.interp", Fail, "PT_INTERP %s → %s is not a loader: %v", s.elf.Interp, real, err)
		return nil
	}
	if ld.Arch != s.elf.Arch {
		rep.add("link.interp", Fail, "PT_INTERP %s → %s is %s, the binary is %s", s.elf.Interp, real, orUnknown(ld.Arch), s.elf.Arch)
		return nil
	}
	if e.Mode&0o111 == 0 {
		rep.add("link.interp", Fail, "PT_INTERP %s → %s is not executable (mode %o)", s.elf.Interp, real, e.Mode.Perm())
		return nil
	}
	via := ""
	if real != s.elf.Interp {
		via = " → " + real
	}
	rep.add("link.interp", Pass, "PT_INTERP %s%s is in the image (%s)", s.elf.Interp, via, ld.Arch)
	return &loaded{path: real, how: "PT_INTERP", elf: ld}
}

// checkNeeded: every DT_NEEDED, transitively, resolves the way the image's
// own loader searches at run time.
func (s *subject) checkNeeded(rep *Report, interp *loaded) {
	if len(s.elf.Needed) == 0 {
		rep.add("link.needed", Skip, "the binary has no DT_NEEDED")
		return
	}
	if interp == nil {
		rep.add("link.needed", Fail, "no loader in the image to load %s", strings.Join(s.elf.Needed, ", "))
		return
	}
	family := loaderFamily(interp.path, interp.elf.SOName)
	if family == "unknown" {
		family = loaderFamily(s.elf.Interp, "")
	}
	sr := newSearcherFor(s.proc, family, s.elf.Arch, interp.path, s.elf.Interp)
	s.graph = sr.resolve(s.binary, s.elf, interp)
	if len(s.graph.missing) > 0 {
		rep.add("link.needed", Fail, "not found: %s", strings.Join(s.graph.missing, "; "))
		return
	}
	var found []string
	for _, o := range s.graph.objects[1:] {
		if o.how != "PT_INTERP" {
			found = append(found, fmt.Sprintf("%s (%s)", o.path, o.how))
		}
	}
	rep.add("link.needed", Pass, "%d libraries found: %s", len(found), orNone(strings.Join(found, ", ")))
}

// checkVersions: every versioned symbol need is defined by the library the
// image provides for it.
func (s *subject) checkVersions(rep *Report) {
	if s.graph == nil {
		if s.elf.Static {
			rep.add("link.versions", Skip, "static binary: no shared libraries")
		} else {
			rep.add("link.versions", Skip, "the libraries could not all be found (see link.needed)")
		}
		return
	}
	var problems []string
	checked := 0
	for _, o := range s.graph.objects {
		for _, lib := range sortedMapKeys(o.elf.VersionNeeds) {
			provider := s.graph.byName[lib]
			if provider == nil {
				continue // reported by link.needed
			}
			for _, v := range o.elf.VersionNeeds[lib] {
				checked++
				if !slices.Contains(provider.elf.VersionDefs, v) {
					newest := MaxGlibcVersion(provider.elf.VersionDefs)
					if newest == "" && len(provider.elf.VersionDefs) > 0 {
						newest = provider.elf.VersionDefs[len(provider.elf.VersionDefs)-1]
					}
					problems = append(problems, fmt.Sprintf("%s needs %s from %s, but %s defines up to %s", o.path, v, lib, provider.path, orNone(newest)))
				}
			}
		}
	}
	switch {
	case len(problems) > 0:
		rep.add("link.versions", Fail, "%s", strings.Join(problems, "; "))
	case checked == 0:
		rep.add("link.versions", Pass, "no versioned symbols are needed")
	case len(s.graph.missing) > 0:
		rep.add("link.versions", Pass, "%d versioned symbol needs of the libraries found are defined (the missing ones fail link.needed)", checked)
	default:
		rep.add("link.versions", Pass, "%d versioned symbol needs are all defined", checked)
	}
}

// checkFamily: the binary's libc family (from its loader) matches the
// target's and the image's libc.
func (s *subject) checkFamily(rep *Report, interp *loaded) {
	if s.elf.Interp == "" {
		if s.in.Libc == targets.LibcGlibc || (s.in.Libc == targets.LibcMusl && s.in.Link != targets.LinkStatic) {
			rep.add("link.family", Fail, "the target is %s but the binary is static", s.in.Libc)
			return
		}
		rep.add("link.family", Skip, "static binary: no libc is loaded at run time")
		return
	}
	binFamily := loaderFamily(s.elf.Interp, "")
	if s.in.Libc != "" && s.in.Libc != targets.LibcNone && binFamily != string(s.in.Libc) {
		rep.add("link.family", Fail, "the target is %s but the binary asks for the %s loader %s", s.in.Libc, binFamily, s.elf.Interp)
		return
	}
	imgFamily := s.imageLibc()
	if interp != nil {
		if f := loaderFamily(interp.path, interp.elf.SOName); f != "unknown" {
			imgFamily = f
		}
	}
	switch {
	case imgFamily == "":
		rep.add("link.family", Fail, "the binary is %s (%s) but the image has no libc", binFamily, s.elf.Interp)
	case imgFamily != binFamily:
		rep.add("link.family", Fail, "the binary is %s (%s) but the image's libc is %s", binFamily, s.elf.Interp, imgFamily)
	default:
		rep.add("link.family", Pass, "%s binary, %s image", binFamily, imgFamily)
	}
}

// imageLibc names the libc whose loader the image has for the platform.
func (s *subject) imageLibc() string {
	for _, libc := range []targets.Libc{targets.LibcGlibc, targets.LibcMusl} {
		if l := targets.Loader(libc, s.in.Platform); l != "" {
			if _, e, err := s.fsys.Resolve(l); err == nil && e.Type == TypeFile {
				return string(libc)
			}
		}
	}
	return ""
}

// checkResolver: which resolver Go will pick in this image, compared with
// verify.resolver, by the rules of the Go release that built the binary.
func (s *subject) checkResolver(rep *Report) Prediction {
	if s.goInfo == nil {
		rep.add("dns.resolver", Skip, "not a Go binary (no build info)")
		return Prediction{}
	}
	p := predictResolver(s.goInfo, s.proc, ProbeName)
	want := s.in.Policy.Resolver
	rule := " [" + p.Rule + "]"
	switch {
	case p.Resolver == ResolverNone:
		rep.add("dns.resolver", Skip, "%s", p.Reason)
	case !p.Known:
		rep.add("dns.resolver", Warn, "%s: %s resolver (%s): %s%s", rulesFor(s.goInfo.GoVersion).unknownNote(s.goInfo.GoVersion), p.Resolver, p.Order, p.Reason, rule)
	case want == "" || want == "any" || want == p.Resolver:
		rep.add("dns.resolver", Pass, "%s resolver (%s): %s%s", p.Resolver, p.Order, p.Reason, rule)
	default:
		rep.add("dns.resolver", Fail, "verify.resolver is %s, but Go will use the %s resolver (%s): %s%s", want, p.Resolver, p.Order, p.Reason, rule)
	}
	return p
}

// checkCerts: if the binary loads the system roots, crypto/x509 finds
// some where the binary's release looks, as the image's user.
func (s *subject) checkCerts(rep *Report) {
	required := s.in.Policy.Requires("certs")
	needed := s.goInfo != nil && s.goInfo.LoadsRoots
	if !needed && !required {
		switch {
		case s.goInfo == nil:
			rep.add("files.certs", Skip, "not a Go binary: cannot tell whether it loads CA roots")
		case !s.goInfo.HasFuncTable:
			rep.add("files.certs", Warn, "no function table to tell whether the binary loads CA roots")
		default:
			rep.add("files.certs", Skip, "the binary does not load the system CA roots")
		}
		return
	}
	why := "the binary loads the system CA roots (crypto/x509)"
	if !needed {
		why = "verify.require lists certs"
	}
	version := ""
	if s.goInfo != nil {
		version = s.goInfo.GoVersion
	}
	r := rulesFor(version)
	found := predictRoots(s.proc, r, s.goInfo)
	rule := " [" + r.source("crypto/x509 root_unix.go, root_linux.go") + ": the first readable file of the list wins, then every file of the directories]"
	where := ""
	switch {
	case found.file != "" && found.fileN > 0:
		where = fmt.Sprintf("%s has %d certificates", found.file, found.fileN)
	case found.file != "":
		where = fmt.Sprintf("%s is the first file Go can read and has no certificate", found.file)
	}
	if found.dir != "" {
		if where != "" {
			where += "; "
		}
		where += found.dir + " holds certificates"
	}
	status, failStatus := Pass, Fail
	if s.goInfo != nil && !r.known {
		status, failStatus, why = Warn, Warn, r.unknownNote(version)+"; "+why
	}
	switch {
	case found.fallback != "":
		rep.add("files.certs", status, "%s; golang.org/x/crypto/x509roots/fallback's embedded roots are used: %s%s", why, found.fallback, rule)
	case found.certs > 0 && found.certs != found.fileN:
		rep.add("files.certs", status, "%s: %s (%d certificates in all)%s", why, where, found.certs, rule)
	case found.certs > 0:
		rep.add("files.certs", status, "%s: %s%s", why, where, rule)
	case where == "" && found.firstErr == nil:
		rep.add("files.certs", failStatus, "%s, but no CA bundle is in the image at %s (TLS will fail with `x509: certificate signed by unknown authority`)%s", why, strings.Join(found.files, ", "), rule)
	default:
		detail := where
		if found.firstErr != nil {
			detail = strings.TrimPrefix(detail+"; ", "; ") + fmt.Sprintf("%s: %v", found.errPath, found.firstErr)
		}
		rep.add("files.certs", failStatus, "%s, but the process (uid %d) loads no CA root: %s (TLS will fail with `x509: certificate signed by unknown authority`)%s", why, s.proc.uid, detail, rule)
	}
}

// checkTzdata: if the binary loads time zones, time.LoadLocation finds
// zoneinfo in the image (or in the binary).
func (s *subject) checkTzdata(rep *Report) {
	required := s.in.Policy.Requires("tzdata")
	needed := s.goInfo != nil && s.goInfo.LoadsZones
	if !needed && !required {
		if s.goInfo == nil {
			rep.add("files.tzdata", Skip, "not a Go binary: cannot tell whether it loads time zones")
		} else {
			rep.add("files.tzdata", Skip, "the binary does not call time.LoadLocation")
		}
		return
	}
	why := "the binary calls time.LoadLocation"
	if !needed {
		why = "verify.require lists tzdata"
	}
	version := ""
	if s.goInfo != nil {
		version = s.goInfo.GoVersion
	}
	r := rulesFor(version)
	rule := " [" + r.source("time zoneinfo.go, zoneinfo_read.go") + ": ZONEINFO, then /usr/share/zoneinfo/, /usr/share/lib/zoneinfo/, /usr/lib/locale/TZ/, /etc/zoneinfo/, then time/tzdata]"
	pass, fail := Pass, Fail
	if s.goInfo != nil && !r.known {
		pass, fail, why = Warn, Warn, r.unknownNote(version)+"; "+why
	}
	from, err := predictZone(s.proc, s.goInfo, zoneProbe)
	if err == nil {
		rep.add("files.tzdata", pass, "%s; %s loads from %s%s", why, zoneProbe, from, rule)
		return
	}
	rep.add("files.tzdata", fail, "%s, but %s does not load for the process (uid %d): %v (fix: add tzdata to the base, or build with -tags timetzdata)%s", why, zoneProbe, s.proc.uid, err, rule)
}

// checkUser: the image user is not root and exists in /etc/passwd, as a
// runtime resolves it.
func (s *subject) checkUser(rep *Report) {
	required := s.in.Policy.Requires("nonroot")
	fail := Warn
	if required {
		fail = Fail
	}
	spec := s.cfg.Config.User
	rule := " [" + userRule + "]"
	u := s.user
	switch {
	case s.userErr != nil:
		rep.add("user.nonroot", Fail, "user %q: %v: the container will not start%s", spec, s.userErr, rule)
	case u.uid == 0 && u.name != "":
		rep.add("user.nonroot", fail, "the image runs as root (user %q is %s, uid 0, at /etc/passwd line %d)%s", spec, u.name, u.line, rule)
	case u.uid == 0:
		rep.add("user.nonroot", fail, "the image runs as root (user %q)%s", spec, rule)
	case u.name != "":
		rep.add("user.nonroot", Pass, "user %q is %s (uid %d, gid %d) at /etc/passwd line %d%s", spec, u.name, u.uid, u.gid, u.line, rule)
	default:
		rep.add("user.nonroot", fail, "uid %d is not root, but /etc/passwd has no entry for it%s", u.uid, rule)
	}
}

// checkBase: the base is pinned by digest and recorded in the annotations.
func (s *subject) checkBase(rep *Report) {
	name, digest := s.ann["org.opencontainers.image.base.name"], s.ann["org.opencontainers.image.base.digest"]
	switch {
	case s.in.Scratch:
		rep.add("base.pinned", Skip, "built on scratch: no base")
	case s.in.BaseDigest != "" && digest != s.in.BaseDigest:
		rep.add("base.pinned", Fail, "the config pins %s@%s but the image records %s", s.in.BaseName, s.in.BaseDigest, orNone(digest))
	case digest == "":
		rep.add("base.pinned", Warn, "no org.opencontainers.image.base.digest annotation: the base cannot be traced")
	default:
		rep.add("base.pinned", Pass, "%s@%s", orUnknown(name), digest)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortedMapKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
