package verify

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Runner runs binaries from an image's own files: a private copy of the
// image root, in a sandbox of new namespaces (see sandbox_linux.go), with
// qemu-user for a foreign architecture when it is installed.
type Runner struct {
	TempDir string            // where image roots are written; "" is os.TempDir()
	QEMU    map[string]string // GOARCH -> qemu-user binary on the host
}

// NewRunner finds qemu-user binaries on PATH.
func NewRunner() *Runner {
	r := &Runner{QEMU: map[string]string{}}
	for arch, q := range map[string]string{"arm64": "qemu-aarch64-static", "amd64": "qemu-x86_64-static", "arm": "qemu-arm-static",
		"386": "qemu-i386-static", "ppc64le": "qemu-ppc64le-static", "s390x": "qemu-s390x-static", "riscv64": "qemu-riscv64-static"} {
		if p, err := exec.LookPath(q); err == nil {
			r.QEMU[arch] = p
		}
	}
	return r
}

// hostArch is the GOARCH of the machine kiln runs on.
var hostArch = runtime.GOARCH

// qemuPath is where the qemu binary goes inside the image root copy.
const qemuPath = "/.kiln-qemu"

// checkRun runs run.start and run.resolver (and the dns_load run).
func (s *subject) checkRun(ctx context.Context, rep *Report, pred Prediction) {
	pol := s.in.Policy
	skip := func(why string) {
		rep.add("run.start", Skip, "%s", why)
		rep.add("run.resolver", Skip, "%s", why)
	}
	switch {
	case !pol.Run:
		skip("verify.run is false")
		return
	case s.in.Runner == nil:
		skip("no runner was given")
		return
	}
	// The image's platform decides how a runtime starts it: natively on a
	// host of that arch (a foreign binary then fails, as it would there),
	// through qemu-user for that arch otherwise.
	var qemu string
	if arch := s.in.Platform.Arch; arch != hostArch {
		if qemu = s.in.Runner.QEMU[arch]; qemu == "" {
			skip(fmt.Sprintf("%s images cannot run on this %s host without qemu-user (install the Debian package qemu-user-static)", s.in.Platform, hostArch))
			return
		}
	}
	root, cleanup, err := s.in.Runner.prepare(s, qemu)
	if err != nil {
		skip("cannot prepare the image root: " + err.Error())
		return
	}
	defer cleanup()
	uid, gid, err := s.imageUser()
	if err != nil {
		rep.add("run.start", Fail, "%v", err)
		rep.add("run.resolver", Skip, "run.start failed")
		return
	}
	base := sandboxConfig{
		Root: root, Env: s.env, UID: uid, GID: gid, Dir: cmp.Or(s.cfg.Config.WorkingDir, "/"),
		Timeout: max(pol.RunTimeout, 100*time.Millisecond), Runs: 1, Parallel: 1, LimitMem: qemu == "", MaxOutput: 64 << 10,
		Devices: []string{"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"},
	}
	argv := func(args []string) []string {
		// The entrypoint as written: a multi-call binary (busybox) looks
		// at the name it was started under.
		a := append([]string{rep.Binary}, args...)
		if qemu != "" {
			a = append([]string{qemuPath}, a...)
		}
		return a
	}

	start := base
	start.Argv = argv(pol.Args)
	res, err := runSandbox(ctx, start)
	switch {
	case err != nil:
		skip("the sandbox could not run here: " + err.Error())
		return
	case res.Setup != "":
		skip("the sandbox could not be set up here: " + res.Setup)
		return
	}
	r := res.Runs[0]
	how := strings.Join(start.Argv, " ")
	switch {
	case r.StartErr != "":
		rep.add("run.start", Fail, "exec %s: %s%s", s.binary, r.StartErr, s.startHint(r.StartErr))
	case r.Running:
		rep.add("run.start", Pass, "`%s` was still running after %s (a server that started); stopped", how, start.Timeout)
	case r.Signal != "":
		rep.add("run.start", Fail, "`%s` was killed by %s%s", how, r.Signal, tail(r.Stderr))
	case r.Exit != pol.ExpectExit:
		rep.add("run.start", Fail, "`%s` exited %d, want %d%s", how, r.Exit, pol.ExpectExit, tail(r.Stderr+r.Stdout))
	default:
		rep.add("run.start", Pass, "`%s` exited %d%s", how, r.Exit, firstLine(r.Stdout))
	}
	if rep.Checks[len(rep.Checks)-1].Status == Fail {
		rep.add("run.resolver", Skip, "run.start failed")
		return
	}
	s.runResolver(ctx, rep, base, argv, pred)
}

// runResolver runs the binary's lookup with the resolver's debug output on,
// against verify's DNS server inside the sandbox.
func (s *subject) runResolver(ctx context.Context, rep *Report, base sandboxConfig, argv func([]string) []string, pred Prediction) {
	pol := s.in.Policy
	if len(pol.LookupArgs) == 0 {
		rep.add("run.resolver", Skip, "verify.lookup_args is not set: give the arguments that make the binary resolve {name}, e.g. [--lookup, {name}]")
		return
	}
	if pred.Resolver == ResolverNone {
		rep.add("run.resolver", Skip, "the binary does not link the resolver")
		return
	}
	args := make([]string, len(pol.LookupArgs))
	for i, a := range pol.LookupArgs {
		args[i] = strings.ReplaceAll(a, "{name}", ProbeName)
	}
	cfg := base
	cfg.Argv = argv(args)
	cfg.DNS = true
	defaults := ""
	if s.goInfo != nil {
		defaults = s.goInfo.DefaultDebug
	}
	cfg.Env = withNetdnsDebug(s.env, defaults)
	res, err := runSandbox(ctx, cfg)
	if err != nil || res.Setup != "" {
		why := res.Setup
		if err != nil {
			why = err.Error()
		}
		rep.add("run.resolver", Skip, "the sandbox could not run the lookup here: %s", why)
		return
	}
	r := res.Runs[0]
	used := resolverUsed(r.Stderr)
	ok := r.StartErr == "" && !r.Running && r.Exit == pol.ExpectExit && res.DNSAnswers > 0
	switch {
	case used == "":
		rep.add("run.resolver", Fail, "the binary printed no resolver decision with GODEBUG=netdns=2 (did the lookup arguments make it resolve %s?)%s", ProbeName, tail(r.Stderr))
	case pred.Resolver != "" && used != pred.Resolver:
		rep.add("run.resolver", Fail, "dns.resolver predicted the %s resolver, but the binary used %s", pred.Resolver, used)
	case !ok:
		rep.add("run.resolver", Fail, "the %s resolver's lookup of %s failed: exit %d, %d queries reached the DNS server%s", used, ProbeName, r.Exit, res.DNSQueries, tail(r.Stderr))
	default:
		rep.add("run.resolver", Pass, "%s resolver, as predicted; %s resolved through verify's DNS server (%d queries)", used, ProbeName, res.DNSQueries)
	}
	if !ok || pol.DNSLoad <= 0 {
		return
	}
	load := cfg
	load.Runs, load.Parallel = pol.DNSLoad, min(pol.DNSLoad, 16)
	// Only exits and times are measured: up to 10,000 runs' output would
	// overflow the sandbox's report, and the measurement with it.
	load.MaxOutput = 0
	lres, err := runSandbox(ctx, load)
	if err != nil || lres.Setup != "" {
		return
	}
	st := &LoadStat{Lookups: len(lres.Runs)}
	var ms []float64
	for _, r := range lres.Runs {
		if r.StartErr == "" && !r.Running && r.Exit == pol.ExpectExit {
			st.Succeeded++
			ms = append(ms, r.Millis)
		}
	}
	st.P50ms, st.P99ms = percentile(ms, 50), percentile(ms, 99)
	rep.DNSLoad = st
}

// withNetdnsDebug adds netdns debug level 2 to the image's GODEBUG,
// keeping the resolver mode the image or the binary's compiled-in defaults
// set (netdns=go becomes netdns=go+2): a bare netdns=2 would override them.
func withNetdnsDebug(env []string, defaults string) []string {
	mode := netdnsMode(defaults, envValue(env, "GODEBUG"))
	setting := "netdns=2"
	if mode != "" {
		setting = "netdns=" + mode + "+2"
	}
	out := make([]string, 0, len(env)+1)
	gd := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			gd = v
			continue
		}
		out = append(out, kv)
	}
	if gd != "" {
		gd += ","
	}
	return append(out, "GODEBUG="+gd+setting)
}

var lookupOrderRE = regexp.MustCompile(`hostLookupOrder\(` + regexp.QuoteMeta(ProbeName) + `\.?\) = (\S+)`)

// resolverUsed reads which resolver the binary used from its netdns debug
// lines: "go" or "cgo", "" when it printed none.
func resolverUsed(stderr string) string {
	if m := lookupOrderRE.FindStringSubmatch(stderr); m != nil {
		if m[1] == "cgo" {
			return ResolverCgo
		}
		return ResolverGo
	}
	switch {
	case strings.Contains(stderr, "go package net: using the Go DNS resolver"),
		strings.Contains(stderr, "go package net: GODEBUG setting forcing use of the Go resolver"):
		return ResolverGo
	case strings.Contains(stderr, "go package net: using the cgo DNS resolver"),
		strings.Contains(stderr, "go package net: GODEBUG setting forcing use of the cgo resolver"):
		return ResolverCgo
	}
	return ""
}

// startHint explains the kernel's ENOENT for a file that exists.
func (s *subject) startHint(errText string) string {
	if strings.Contains(errText, "no such file") && s.elf != nil && s.elf.Interp != "" {
		if _, _, err := s.fsys.Resolve(s.elf.Interp); err != nil {
			return fmt.Sprintf(" (the binary exists; its loader %s does not)", s.elf.Interp)
		}
	}
	return ""
}

// imageUser turns the config's user into numeric ids, through the image's
// /etc/passwd and /etc/group for names.
func (s *subject) imageUser() (int, int, error) {
	user, group, _ := strings.Cut(s.cfg.Config.User, ":")
	uid, gid := 0, -1
	if user != "" {
		n, err := strconv.Atoi(user)
		if err != nil {
			e, ok := lookupDB(s.fsys, "/etc/passwd", user)
			if !ok {
				return 0, 0, fmt.Errorf("the image user %q is not in /etc/passwd: the container cannot start (`unable to find user %s`)", user, user)
			}
			n, _ = strconv.Atoi(e[2])
			if g, err := strconv.Atoi(e[3]); err == nil {
				gid = g
			}
		} else if e, ok := lookupDB(s.fsys, "/etc/passwd", user); ok && gid < 0 {
			if g, err := strconv.Atoi(e[3]); err == nil {
				gid = g
			}
		}
		uid = n
	}
	if group != "" {
		n, err := strconv.Atoi(group)
		if err != nil {
			e, ok := lookupDB(s.fsys, "/etc/group", group)
			if !ok {
				return 0, 0, fmt.Errorf("the image group %q is not in /etc/group", group)
			}
			n, _ = strconv.Atoi(e[2])
		}
		gid = n
	}
	if gid < 0 {
		gid = uid
	}
	if uid < 0 || uid > 65535 || gid < 0 || gid > 65535 {
		return 0, 0, fmt.Errorf("user %q is outside the ids a user namespace maps here (0-65535)", s.cfg.Config.User)
	}
	return uid, gid, nil
}

// lookupDB finds a name or id in a passwd-style file and returns the
// fields of its line: name, password, id, then (in passwd) the group id
// and the rest unsplit. The file is the image's: it is read a line at a
// time, never split whole.
func lookupDB(fsys *FS, file, key string) ([]string, bool) {
	data, err := fsys.readShared(file)
	if err != nil {
		return nil, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.SplitN(line, ":", 5)
		if len(f) >= 4 && (f[0] == key || f[2] == key) {
			return f, true
		}
	}
	return nil, false
}

// prepare writes a private copy of the image root for the runs: the
// image's files, owned as in the image through the namespace's id mapping,
// resolv.conf pointing at verify's DNS server, mount points for /proc and
// the device nodes, and qemu when the binary is foreign.
func (r *Runner) prepare(s *subject, qemu string) (string, func(), error) {
	dir, err := os.MkdirTemp(sandboxTempDir(r.TempDir), "kiln-root-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	// The sandbox runs as an unprivileged host id: it must be able to
	// traverse the directory, not list it.
	if err := os.Chmod(dir, 0o711); err != nil {
		cleanup()
		return "", nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		cleanup()
		return "", nil, err
	}
	if err := s.fsys.Materialize(root); err != nil {
		cleanup()
		return "", nil, err
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	defer rt.Close()
	// The image's own /proc, /dev, /etc entries may be anything (a symlink
	// out of the root, a file): replace them through os.Root, never follow.
	for _, d := range []string{"proc", "dev", "etc"} {
		if fi, err := rt.Lstat(d); err == nil && !fi.IsDir() {
			_ = rt.Remove(d)
		}
		_ = rt.Mkdir(d, 0o755)
	}
	for _, dev := range []string{"null", "zero", "random", "urandom"} {
		p := path.Join("dev", dev)
		_ = rt.RemoveAll(p)
		f, err := rt.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("creating /%s: %w", p, err)
		}
		f.Close()
	}
	_ = rt.RemoveAll("etc/resolv.conf")
	if err := rt.WriteFile("etc/resolv.conf", []byte(resolvConf(s.fsys)), 0o644); err != nil {
		cleanup()
		return "", nil, err
	}
	if qemu != "" {
		data, err := os.ReadFile(qemu)
		if err != nil {
			cleanup()
			return "", nil, err
		}
		if err := rt.WriteFile(strings.TrimPrefix(qemuPath, "/"), data, 0o755); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	if os.Geteuid() == 0 {
		// Owners as in the image, shifted into the namespace's host range,
		// so the image user owns what the image says it owns; through rt,
		// like every other change to the copy.
		_ = s.fsys.Walk(func(e *Entry) error {
			if e.Path == "/" {
				return nil
			}
			_ = rt.Lchown(e.Path[1:], hostIDBase+min(max(e.UID, 0), 65535), hostIDBase+min(max(e.GID, 0), 65535))
			return nil
		})
	}
	return root, cleanup, nil
}

// resolvConf points the image at verify's DNS server, keeping the image's
// options and search lines so the resolver decides as it would.
func resolvConf(fsys *FS) string {
	var b strings.Builder
	b.WriteString("nameserver 127.0.0.1\n")
	if data, err := fsys.readShared("/etc/resolv.conf"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] != "nameserver" {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	out := strings.Join(lines, " | ")
	if len(out) > 300 {
		out = out[len(out)-300:]
	}
	return ": " + out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 120 {
		line = line[:120]
	}
	return ": " + line
}

// SandboxCheck reports whether run.* can run here: it starts the sandbox
// on an empty root and returns why not, or "" when it works.
func SandboxCheck(ctx context.Context) string {
	dir, err := os.MkdirTemp(sandboxTempDir(""), "kiln-probe-")
	if err != nil {
		return err.Error()
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err.Error()
	}
	for _, d := range []string{"proc", "dev"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err.Error()
		}
	}
	res, err := runSandbox(ctx, sandboxConfig{Root: dir, Argv: []string{"/probe"}, Dir: "/", Timeout: time.Second, Runs: 1, Parallel: 1, MaxOutput: 1024})
	switch {
	case err != nil:
		return err.Error()
	case res.Setup != "":
		return res.Setup
	}
	return ""
}
