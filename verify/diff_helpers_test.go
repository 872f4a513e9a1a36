package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The differential tests (*_diff_test.go) hold each rule kiln
// re-implements to the real component: for every input, kiln predicts
// from its model of the image (an FS) and the real thing runs in a root
// directory materialized from that same FS, in new mount, pid and network
// namespaces with /proc mounted, chrooted, as the image user. Inputs come
// from tables (run by make test) and from fuzzing with the real component
// as the oracle (go test -fuzz, see README).

// needTool skips when a tool the differential tests drive is missing,
// except under CI, which installs every one of them (make deps-test).
func diffMissing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI installs it (make deps-test)", why)
	}
	t.Skip(why)
}

// diffNeedRoot: the real runs chroot and set ids.
func diffNeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		diffMissing(t, "the differential tests chroot into image roots: they need root")
	}
	for _, tool := range []string{"unshare", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			diffMissing(t, tool+" is not installed (util-linux, coreutils)")
		}
	}
}

// diffToolchains are the Go releases the differential tests build probes
// with: the oldest release kiln knows, one from each side of the
// changes in net/conf.go and root_linux.go, and this machine's Go.
// GOTOOLCHAIN fetches the others into the module cache (make deps-test
// does it; the tests themselves never download).
var diffToolchains = []string{"go1.21.13", "go1.22.12", "go1.24.11", "local"}

// probeMain is the probe: each subcommand asks the real component one
// question and prints its answer.
//
//	order NAME   net's hostLookupOrder for NAME, read through go:linkname
//	             from the net package itself: the same function LookupHost
//	             calls, with nothing added to the environment or files, so
//	             the answer is the decision, not a debug print of it
//	lookup NAME  net.LookupHost
//	roots        len of x509.SystemCertPool(), or "error: …"
//	zone NAME    time.LoadLocation: "ok" or "error: …"
//	id           uid gid groups of the process
const probeMain = `package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"
	_ "unsafe"
)

type conf struct{}

//go:linkname systemConf net.systemConf
func systemConf() *conf

//go:linkname hostLookupOrder net.(*conf).hostLookupOrder
func hostLookupOrder(c *conf, r *net.Resolver, hostname string) (int, *byte)

var orders = []string{"cgo", "files,dns", "dns,files", "files", "dns"}

func main() {
	if os.Args[1] == "-C" {
		if err := os.Chdir(os.Args[2]); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Args = append(os.Args[:1], os.Args[3:]...)
	}
	switch os.Args[1] {
	case "order":
		o, _ := hostLookupOrder(systemConf(), nil, os.Args[2])
		fmt.Println(orders[o])
	case "lookup":
		addrs, err := net.LookupHost(os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(addrs)
	case "roots":
		pool, err := x509.SystemCertPool()
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(len(pool.Subjects())) //nolint:staticcheck // on Linux the pool holds the roots it loaded
	case "zone":
		if _, err := time.LoadLocation(os.Args[2]); err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println("ok")
	case "id":
		groups, _ := os.Getgroups()
		fmt.Println(os.Getuid(), os.Getgid(), groups)
	}
}
`

// probeDebugCgo compiles netdns=cgo into the probe's DefaultGODEBUG.
const probeDebugCgo = `//go:build kilndebugcgo
//go:debug netdns=cgo

package main
`

// probeKind is one build of the probe.
type probeKind struct {
	toolchain string // "go1.22.12", or "local" for this machine's Go
	libc      string // none (CGO_ENABLED=0), glibc or musl
	tags      string // -tags
}

func (k probeKind) String() string {
	s := k.toolchain + "/" + k.libc
	if k.tags != "" {
		s += "/" + k.tags
	}
	return s
}

// builds holds what the differential tests build once per test process
// (probes, the loader test's objects), by key.
type builds[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*built[V]
}

type built[V any] struct {
	once sync.Once
	v    V
	skip string // why it cannot be built here
	err  error
}

// get builds the artifact for k on first use; it skips the test when a
// tool is missing (fails under CI) and fails it when the build does.
func (b *builds[K, V]) get(t testing.TB, k K, what string, build func() (V, string, error)) V {
	t.Helper()
	b.mu.Lock()
	if b.m == nil {
		b.m = map[K]*built[V]{}
	}
	a := b.m[k]
	if a == nil {
		a = &built[V]{}
		b.m[k] = a
	}
	b.mu.Unlock()
	a.once.Do(func() { a.v, a.skip, a.err = build() })
	switch {
	case a.skip != "":
		diffMissing(t, a.skip)
	case a.err != nil:
		t.Fatalf("building %s: %v", what, a.err)
	}
	return a.v
}

// builtProbe is a probe binary on disk and what kiln reads from it.
type builtProbe struct {
	path string
	info *GoInfo
}

// install links the probe into an image root as name, with the libc it
// needs (hard links: the runs only read them).
func (b builtProbe) install(t testing.TB, im diffImage, name string, libc string) {
	t.Helper()
	linkInto(t, b.path, filepath.Join(im.root, name))
	im.installLibc(t, libc)
}

// addProbe builds the probe k and installs it as /probe-i, returning its
// path in the image and what kiln reads from it.
func (im diffImage) addProbe(t testing.TB, i int, k probeKind) (string, *GoInfo) {
	t.Helper()
	probe := buildProbe(t, k)
	name := fmt.Sprintf("/probe-%d", i)
	probe.install(t, im, name, k.libc)
	return name, probe.info
}

var probes builds[probeKind, builtProbe]

// buildProbe returns the probe built as k, from a cache directory shared
// by test runs and fuzz workers (keyed by the source and the build), or
// skips when the toolchain or C compiler is not here.
func buildProbe(t testing.TB, k probeKind) builtProbe {
	t.Helper()
	return probes.get(t, k, "the probe "+k.String(), func() (builtProbe, string, error) {
		p, skip, err := buildProbeOnce(k)
		if p == "" || err != nil {
			return builtProbe{}, skip, err
		}
		data, err := os.ReadFile(p)
		return builtProbe{path: p, info: ReadGoInfo(data)}, "", err
	})
}

func buildProbeOnce(k probeKind) (string, string, error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOFLAGS=-buildvcs=false", "GOWORK=off", "GOPROXY=off", "GOOS=linux", "GOARCH=amd64"}
	for _, key := range []string{"GOCACHE", "GOPATH", "GOMODCACHE", "TMPDIR"} {
		if v, ok := os.LookupEnv(key); ok {
			env = append(env, key+"="+v)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	env = append(env, "GOTOOLCHAIN="+k.toolchain)
	switch k.libc {
	case "none":
		env = append(env, "CGO_ENABLED=0")
	case "glibc":
		env = append(env, "CGO_ENABLED=1", "CC=gcc")
	case "musl":
		env = append(env, "CGO_ENABLED=1", "CC=musl-gcc")
	}
	for _, kv := range env {
		if cc, ok := strings.CutPrefix(kv, "CC="); ok {
			if _, err := exec.LookPath(cc); err != nil {
				return "", fmt.Sprintf("%s is not installed (apt-get install -y %s)", cc, map[string]string{"gcc": "gcc", "musl-gcc": "musl-tools"}[cc]), nil
			}
		}
	}
	// Which release is this? go1.23 and later refuse the probe's
	// linkname unless told not to check.
	out, err := runGo(goBin, env, "", "env", "GOVERSION")
	if err != nil {
		return "", fmt.Sprintf("the Go toolchain %s is not in the module cache (make deps-test fetches it): %v", k.toolchain, firstLineOf(out)), nil
	}
	version := strings.TrimSpace(out)
	args := []string{"build", "-trimpath", "-o", "probe"}
	if minor, _ := goMinor(version); minor >= 23 {
		args = append(args, "-ldflags=-checklinkname=0")
	}
	if k.tags != "" {
		args = append(args, "-tags", k.tags)
	}
	sum := sha256.Sum256([]byte(probeMain + probeDebugCgo + version + k.libc + strings.Join(args, " ")))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kiln-test", "probes", hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "probe")); err == nil {
		return filepath.Join(dir, "probe"), "", nil
	}
	src, err := os.MkdirTemp(filepath.Dir(dir), "build-")
	if err != nil && os.MkdirAll(filepath.Dir(dir), 0o755) == nil {
		src, err = os.MkdirTemp(filepath.Dir(dir), "build-")
	}
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(src)
	files := map[string]string{"go.mod": "module kiln.test/probe\n\ngo 1.21\n", "main.go": probeMain, "debugcgo.go": probeDebugCgo}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			return "", "", err
		}
	}
	if out, err := runGo(goBin, env, src, args...); err != nil {
		return "", "", fmt.Errorf("go %s (%s): %v\n%s", strings.Join(args, " "), k, err, out)
	}
	// Rename into place: fuzz workers may build the same probe at once.
	if err := os.Rename(src, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return "", "", err
		}
	}
	// The probe runs as the image user: the cache directory may be
	// private, the hard links to it are not.
	return filepath.Join(dir, "probe"), "", os.Chmod(filepath.Join(dir, "probe"), 0o755)
}

func runGo(goBin string, env []string, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env, cmd.Dir = env, dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// hent is one entry of a differential test's image: what kiln's FS
// flattens and what the real run sees, from the same tar.
type hent struct {
	path     string // without the leading slash
	typ      byte   // tar.TypeReg when 0
	mode     int64
	uid, gid int
	data     []byte
	link     string
}

func hfile(p string, mode int64, data string) hent {
	return hent{path: p, typ: tar.TypeReg, mode: mode, data: []byte(data)}
}

func hdir(p string, mode int64) hent { return hent{path: p, typ: tar.TypeDir, mode: mode} }

func hlink(p, target string) hent {
	return hent{path: p, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

func hentTar(t testing.TB, ents []hent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.path, Typeflag: typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, Linkname: e.link, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing %s: %v", e.path, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// diffImage is one input: kiln's FS of the layers and a root directory
// materialized from it with the image's owners.
type diffImage struct {
	fsys *FS
	root string
}

// materializeDiff flattens the layers (lower first) and writes the result
// to a fresh directory the process can enter, with /proc to mount on.
func materializeDiff(t testing.TB, layers ...[]hent) diffImage {
	t.Helper()
	var raw [][]byte
	for _, l := range layers {
		raw = append(raw, hentTar(t, l))
	}
	v1layers := make([]v1.Layer, len(raw))
	for i, r := range raw {
		v1layers[i] = rawLayer(t, r)
	}
	fsys, err := FlattenLayers(v1layers, Limits{})
	if err != nil {
		t.Fatalf("flattening the test image: %v", err)
	}
	dir, err := os.MkdirTemp(sandboxTempDir(""), "kiln-diff-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Materialize(root); err != nil {
		t.Fatalf("materializing the test image: %v", err)
	}
	// Owners as in the image; the run sets the image user's ids itself.
	_ = fsys.Walk(func(e *Entry) error {
		if e.Path != "/" && e.Type != TypeOther {
			_ = os.Lchown(filepath.Join(root, e.Path), e.UID, e.GID)
		}
		return nil
	})
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o555); err != nil {
		t.Fatal(err)
	}
	return diffImage{fsys: fsys, root: root}
}

// diffRun is one real run of a command in a test image.
type diffRun struct {
	stdout, stderr string
	exit           int
}

// run starts argv in the image root as uid:gid (with groups), with env
// and working directory cwd, as a runtime would start a container's
// process, and returns what it printed.
func (im diffImage) run(t testing.TB, uid, gid int, groups []int, env []string, cwd string, argv ...string) diffRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.Itoa(g)
	}
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--mount", "--pid", "--net", "--fork", "--mount-proc=" + filepath.Join(im.root, "proc"),
		chroot, fmt.Sprintf("--userspec=%d:%d", uid, gid)}
	if len(gs) > 0 {
		args = append(args, "--groups="+strings.Join(gs, ","))
	}
	if cwd != "" && cwd != "/" {
		// chroot always starts in "/": the probe changes directory
		// itself before it asks anything.
		argv = append([]string{argv[0], "-C", cwd}, argv[1:]...)
	}
	args = append(append(args, im.root), argv...)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.WaitDelay = time.Second
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := diffRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	default:
		t.Fatalf("running unshare: %v", err)
	}
	return r
}

// libcFiles are the files a probe of libc needs in its image: glibc's
// loader and libc.so.6, or musl's loader (which is its libc too), as
// image path -> host path.
var libcFiles = map[string]map[string]string{
	"glibc": {
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/lib/x86_64-linux-gnu/libc.so.6":            "/lib/x86_64-linux-gnu/libc.so.6",
		"/lib64/ld-linux-x86-64.so.2":                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	},
	"musl": {"/lib/ld-musl-x86_64.so.1": "/lib/ld-musl-x86_64.so.1"},
}

var libcPackages = map[string]string{"glibc": "libc6", "musl": "musl"}

// libcEntries are libc's files as entries of a test image, for tests
// whose rule reads them (the loader's) or that run through the sandbox.
func libcEntries(t testing.TB, libc string) []hent {
	t.Helper()
	var ents []hent
	for dst, src := range libcFiles[libc] {
		if strings.HasPrefix(dst, "/lib64/") {
			ents = append(ents, hlink(dst[1:], src)) // as Debian has it
			continue
		}
		ents = append(ents, hent{path: dst[1:], mode: 0o755, data: hostFile(t, src, libcPackages[libc])})
	}
	return ents
}

// testImage is an amd64 image of one layer of ents whose config edit
// sets; oci gives it OCI media types (umoci reads no others).
func testImage(t testing.TB, ents []hent, oci bool, edit func(*v1.Config)) v1.Image {
	t.Helper()
	base, add := empty.Image, mutate.Addendum{Layer: rawLayer(t, hentTar(t, ents))}
	if oci {
		base = mutate.ConfigMediaType(mutate.MediaType(base, types.OCIManifestSchema1), types.OCIConfigJSON)
		add.MediaType = types.OCILayer
	}
	img, err := mutate.Append(base, add)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	edit(&cf.Config)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// installLibc puts the libc files into the image root, hard-linked from
// the host (skipping when its Debian package is missing). They are not in
// kiln's FS of the image: the rules under test never read them, and
// copying megabytes per fuzz input would make fuzzing crawl.
func (im diffImage) installLibc(t testing.TB, libc string) {
	t.Helper()
	for dst, src := range libcFiles[libc] {
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			diffMissing(t, fmt.Sprintf("%s is not here (apt-get install -y %s)", src, libcPackages[libc]))
		}
		linkInto(t, real, filepath.Join(im.root, dst))
	}
}

// linkInto hard-links src to dst (creating dst's directory), or copies
// it when they are on different filesystems.
func linkInto(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return
	}
	if err := os.Link(src, dst); err == nil {
		return
	}
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, data, 0o755)
	}
	if err != nil {
		t.Fatalf("putting %s into the image: %v", src, err)
	}
}

// hostFile reads a file of this machine that a test image needs (a
// loader, a libc), skipping when its Debian package is missing.
func hostFile(t testing.TB, p, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		diffMissing(t, fmt.Sprintf("%s is not here (apt-get install -y %s)", p, pkg))
	}
	return b
}
