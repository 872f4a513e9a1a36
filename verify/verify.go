package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kilnbuild/kiln/targets"
)

// Input is one platform image to verify and what is expected of it.
type Input struct {
	Image    v1.Image
	Ref      string // how the report names the image
	Platform targets.Platform
	Binary   string // the binary's path in the image; "" means the entrypoint

	// Libc and Link are what the target promises; empty means infer them
	// from the binary (kiln verify of an image kiln did not build).
	Libc targets.Libc
	Link string

	Policy targets.Policy

	// BaseName and BaseDigest are the base the config pinned; when set,
	// base.pinned requires the image's annotations to match them.
	BaseName, BaseDigest string
	Scratch              bool // the target's base is scratch

	FS     *FS     // the flattened image, when the caller has it
	Runner *Runner // runs the binary; nil skips run.* with the reason
}

// subject is everything the checks share: the image's files and config,
// the binary and what was learnt about it.
type subject struct {
	in     Input
	fsys   *FS
	cfg    *v1.ConfigFile
	ann    map[string]string
	binary string // resolved path
	raw    []byte
	elf    *ELF
	goInfo *GoInfo
	libc   targets.Libc // expected or inferred
	env    []string     // the environment a runtime gives the process (runtimeEnv)
	user   execUser     // who it runs as (resolveUser)
	// userErr is why a runtime cannot resolve the image's user: the
	// container then does not start.
	userErr error
	proc    *proc      // the process: its files, credentials, environment
	graph   *linkGraph // after link.needed
	script  string     // the interpreter when the entrypoint is a #! script
}

// Image runs every check of SPEC §4 on one platform image. An error means
// the image could not be read at all; everything else is a finding.
func Image(ctx context.Context, in Input) (*Report, error) {
	s := &subject{in: in}
	rep := &Report{Image: in.Ref, Platform: in.Platform.String()}
	var err error
	if s.cfg, err = in.Image.ConfigFile(); err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	if s.cfg, err = runtimeConfig(s.cfg); err != nil {
		return nil, err
	}
	if m, err := in.Image.Manifest(); err == nil {
		s.ann = m.Annotations
	}
	s.env = runtimeEnv(s.cfg.Config.Env)
	if s.fsys = in.FS; s.fsys == nil {
		if s.fsys, err = Flatten(in.Image, Limits{}); err != nil {
			return nil, err
		}
	}
	s.user, s.userErr = resolveUser(s.fsys, s.cfg.Config.User)
	s.proc = &proc{fsys: s.fsys, env: s.env, uid: s.user.uid, gid: s.user.gid, groups: s.user.groups, cwd: path.Clean("/" + s.cfg.Config.WorkingDir)}

	rep.Binary = in.Binary
	if rep.Binary == "" {
		if len(s.cfg.Config.Entrypoint) > 0 {
			rep.Binary = s.cfg.Config.Entrypoint[0]
		} else if len(s.cfg.Config.Cmd) > 0 {
			rep.Binary = s.cfg.Config.Cmd[0]
		}
	}
	if rep.Binary == "" {
		rep.add("elf.arch", Fail, "the image has no entrypoint or cmd; pass --binary PATH")
		rep.finish()
		return rep, nil
	}
	if !path.IsAbs(rep.Binary) {
		rep.Binary = lookPath(s.fsys, rep.Binary, s.env)
	}
	if !s.readBinary(rep) {
		rep.Libc = string(in.Libc)
		if s.script != "" {
			s.checkScript(ctx, rep)
		}
		rep.finish()
		return rep, nil
	}
	s.libc = in.Libc
	if s.libc == "" {
		s.libc = inferLibc(s.elf)
	}
	rep.Libc = string(s.libc)

	s.checkArch(rep)
	s.checkLinkMode(rep)
	interp := s.checkInterp(rep)
	s.checkNeeded(rep, interp)
	s.checkVersions(rep)
	s.checkFamily(rep, interp)
	pred := s.checkResolver(rep)
	s.checkRun(ctx, rep, pred)
	s.checkCerts(rep)
	s.checkTzdata(rep)
	s.checkUser(rep)
	s.checkBase(rep)
	rep.finish()
	return rep, nil
}

// runtimeConfig is the config as a runtime reads it: from its JSON, where
// every byte that is not UTF-8 (in User, Env, …) became U+FFFD. An image
// kiln assembles is checked before it is serialized, so the config it
// holds may still have the raw bytes.
func runtimeConfig(cf *v1.ConfigFile) (*v1.ConfigFile, error) {
	b, err := json.Marshal(cf)
	if err != nil {
		return nil, fmt.Errorf("encoding the image config: %w", err)
	}
	var out v1.ConfigFile
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding the image config: %w", err)
	}
	return &out, nil
}

// readBinary finds and parses the binary; when it cannot, it records why
// as failures of the checks that need it and returns false.
func (s *subject) readBinary(rep *Report) bool {
	real, e, err := s.fsys.Resolve(rep.Binary)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.add("elf.arch", Fail, "the binary %s is not in the image", rep.Binary)
		return false
	case err != nil:
		rep.add("elf.arch", Fail, "the binary %s cannot be resolved in the image: %v", rep.Binary, err)
		return false
	case e.Type != TypeFile:
		rep.add("elf.arch", Fail, "%s is a %s, not a file", rep.Binary, e.Type)
		return false
	case e.Mode&0o111 == 0:
		rep.add("elf.arch", Fail, "%s is not executable (mode %o)", rep.Binary, e.Mode.Perm())
		return false
	}
	s.binary = real
	if s.raw, err = s.fsys.readShared(real); err != nil {
		rep.add("elf.arch", Fail, "reading %s: %v", real, err)
		return false
	}
	if bytes.HasPrefix(s.raw, []byte("#!")) {
		line, _, _ := bytes.Cut(s.raw[2:min(len(s.raw), 2+maxELFString)], []byte("\n"))
		if f := strings.Fields(string(line)); len(f) > 0 {
			s.script = f[0]
			return false
		}
	}
	if s.elf, err = ReadELF(s.raw); err != nil {
		rep.add("elf.arch", Fail, "%s: %v", rep.Binary, err)
		return false
	}
	s.goInfo = ReadGoInfo(s.raw)
	return true
}

// checkScript reports on an entrypoint that is a #! script (kiln verify of
// an image kiln did not build): the binary checks need --binary, but the
// interpreter must be in the image, and run.start still shows whether the
// image starts.
func (s *subject) checkScript(ctx context.Context, rep *Report) {
	why := fmt.Sprintf("the entrypoint %s is a script for %s; pass --binary PATH to check the binary it starts", rep.Binary, s.script)
	rep.add("elf.arch", Skip, "%s", why)
	rep.add("link.mode", Skip, "%s", why)
	if _, e, err := s.fsys.Resolve(s.script); err != nil || e.Type != TypeFile || e.Mode&0o111 == 0 {
		rep.add("link.interp", Fail, "the script's interpreter %s is not an executable file in the image", s.script)
	} else {
		rep.add("link.interp", Pass, "the script's interpreter %s is in the image", s.script)
	}
	for _, id := range []string{"link.needed", "link.versions", "link.family", "dns.resolver"} {
		rep.add(id, Skip, "%s", why)
	}
	s.checkRun(ctx, rep, Prediction{})
	rep.add("files.certs", Skip, "%s", why)
	rep.add("files.tzdata", Skip, "%s", why)
	s.checkUser(rep)
	s.checkBase(rep)
}

// lookPath finds a relative entrypoint on the image's PATH, as a runtime
// does; the name is returned as absolute either way.
func lookPath(fsys *FS, name string, env []string) string {
	dirs := splitPath(envValue(env, "PATH"))
	if len(dirs) == 0 {
		dirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
	}
	for _, d := range dirs {
		p := path.Join(d, name)
		if _, e, err := fsys.Resolve(p); err == nil && e.Type == TypeFile {
			return p
		}
	}
	return path.Join("/", name)
}

// inferLibc reads the binary's libc from its loader.
func inferLibc(e *ELF) targets.Libc {
	switch loaderFamily(e.Interp, "") {
	case "musl":
		return targets.LibcMusl
	case "glibc":
		return targets.LibcGlibc
	}
	return targets.LibcNone
}

// loaderFamily tells glibc from musl by the loader's name and SONAME.
func loaderFamily(p, soname string) string {
	base := path.Base(p)
	switch {
	case p == "" && soname == "":
		return ""
	case strings.HasPrefix(base, "ld-musl-"), strings.HasPrefix(base, "libc.musl-"), soname == "libc.so":
		return "musl"
	case strings.HasPrefix(base, "ld-linux"), strings.HasPrefix(base, "ld64.so"), base == "ld.so.1",
		strings.HasPrefix(soname, "ld-linux"), strings.HasPrefix(soname, "ld64.so"):
		return "glibc"
	}
	return "unknown"
}

// expectStatic says whether the target promises a static binary; for an
// image kiln did not build it reports what the binary is.
func (s *subject) expectStatic() bool {
	if s.in.Libc == "" {
		return s.elf.Static
	}
	return s.in.Libc == targets.LibcNone || s.in.Link == targets.LinkStatic
}
