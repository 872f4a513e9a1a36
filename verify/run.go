package verify

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
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
	uid, gid, groups, err := s.imageUser()
	if err != nil {
		rep.add("run.start", Fail, "%v", err)
		rep.add("run.resolver", Skip, "run.start failed")
		return
	}
	base := sandboxConfig{
		Root: root, Env: s.env, UID: uid, GID: gid, Groups: groups, Dir: s.proc.cwd,
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

// runResolver runs the binary's lookup as the image would run it, with
// nothing added to its environment, against verify's DNS server inside
// the sandbox, and tells from the queries the server receives which
// resolver the binary used: a disagreement with dns.resolver fails.
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
	if cfg.Argv[0] == qemuPath {
		// Emulated, a lookup takes many times what it takes natively.
		cfg.Timeout = max(cfg.Timeout*5, 10*time.Second)
	}
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
	used, how := classifyQueries(res.DNSSeen)
	ok := r.StartErr == "" && !r.Running && r.Exit == pol.ExpectExit && res.DNSAnswers > 0
	switch {
	case used == "" && r.Running:
		rep.add("run.resolver", Fail, "`%s` was still running after %s and sent no query for %s to verify's DNS server, so which resolver the binary uses cannot be seen%s", strings.Join(cfg.Argv, " "), cfg.Timeout, ProbeName, tail(r.Stderr))
	case used == "":
		rep.add("run.resolver", Fail, "the lookup of %s sent no query to verify's DNS server (exit %d), so which resolver the binary uses cannot be seen; dns.resolver predicted %s (%s)%s", ProbeName, r.Exit, pred.Resolver, pred.Order, tail(r.Stderr))
	case pred.Resolver != "" && used != pred.Resolver:
		rep.add("run.resolver", Fail, "dns.resolver predicted the %s resolver (%s), but the binary used %s: %s", pred.Resolver, pred.Order, used, how)
	case !ok:
		rep.add("run.resolver", Fail, "the %s resolver's lookup of %s failed: exit %d, %d queries reached the DNS server%s", used, ProbeName, r.Exit, res.DNSQueries, tail(r.Stderr))
	case pred.Resolver == "":
		rep.add("run.resolver", Pass, "%s resolver (%s); %s resolved through verify's DNS server (%d queries)", used, how, ProbeName, res.DNSQueries)
	default:
		rep.add("run.resolver", Pass, "%s resolver, as predicted (%s); %s resolved through verify's DNS server (%d queries)", used, how, ProbeName, res.DNSQueries)
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

// startHint explains the kernel's ENOENT for a file that exists.
func (s *subject) startHint(errText string) string {
	if strings.Contains(errText, "no such file") && s.elf != nil && s.elf.Interp != "" {
		if _, _, err := s.fsys.Resolve(s.elf.Interp); err != nil {
			return fmt.Sprintf(" (the binary exists; its loader %s does not)", s.elf.Interp)
		}
	}
	return ""
}

// imageUser is the ids the process runs with (resolveUser), within the
// ids the sandbox's user namespace maps.
func (s *subject) imageUser() (int, int, []int, error) {
	if s.userErr != nil {
		return 0, 0, nil, fmt.Errorf("user %q: %w: the container cannot start", s.cfg.Config.User, s.userErr)
	}
	u := s.user
	inRange := func(id int) bool { return id >= 0 && id <= 65535 }
	if !inRange(u.uid) || !inRange(u.gid) {
		return 0, 0, nil, fmt.Errorf("user %q is uid %d, gid %d, outside the ids a user namespace maps here (0-65535)", s.cfg.Config.User, u.uid, u.gid)
	}
	var groups []int
	for _, g := range u.groups {
		if inRange(g) {
			groups = append(groups, g)
		}
	}
	return u.uid, u.gid, groups, nil
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
	// The image's own /proc and /dev may be anything (a symlink out of the
	// root, a file): replace them through os.Root, never follow. A runtime
	// mounts over both too.
	for _, d := range []string{"proc", "dev"} {
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
	if real, content, ok := dnsResolvConf(s.fsys); ok {
		if err := rt.WriteFile(strings.TrimPrefix(real, "/"), content, 0o600); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("pointing %s at verify's DNS server: %w", real, err)
		}
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

// dnsResolvConf points the image's resolv.conf at verify's DNS server
// without changing what decides the resolver: only the address of each
// nameserver line becomes 127.0.0.1; every other byte, the file's path
// (through symlinks), mode and owner stay. Nothing is written when the
// image has no regular resolv.conf: Go, glibc and musl then all ask
// 127.0.0.1, which is where the server listens. It returns the file's
// resolved path and new content.
func dnsResolvConf(fsys *FS) (string, []byte, bool) {
	real, e, err := fsys.Resolve("/etc/resolv.conf")
	if err != nil || e.Type != TypeFile {
		return "", nil, false
	}
	data, err := fsys.ReadFile(real)
	if err != nil {
		return "", nil, false
	}
	return real, loopbackNameservers(data), true
}

// loopbackNameservers replaces the second field of every line whose first
// field is "nameserver" (fields as Go, glibc and musl split them: spaces
// and tabs) with 127.0.0.1, keeping the rest of the line.
func loopbackNameservers(data []byte) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	for i, line := range lines {
		rest := strings.TrimLeft(line, " \t")
		lead := line[:len(line)-len(rest)]
		after, ok := strings.CutPrefix(rest, "nameserver")
		if !ok || after == "" || (after[0] != ' ' && after[0] != '\t') {
			continue
		}
		addr := strings.TrimLeft(after, " \t")
		sep := after[:len(after)-len(addr)]
		end := strings.IndexAny(addr, " \t\r\n")
		if end < 0 {
			end = len(addr)
		}
		if end == 0 {
			continue
		}
		lines[i] = lead + "nameserver" + sep + "127.0.0.1" + addr[end:]
	}
	return []byte(strings.Join(lines, ""))
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
