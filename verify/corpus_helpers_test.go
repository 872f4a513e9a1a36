package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kilnbuild/kiln/internal/testbase"
	"github.com/kilnbuild/kiln/verify"
)

// The corpus program: one Go main for every Go case. --version is the
// smoke run, --lookup NAME makes it resolve a name, --certs makes it load
// the system CA roots. With cgo it also calls libm, so that a run proves
// the loader found libm.so.6 in the image.
const (
	corpusMain = `package main

import (
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	version := flag.Bool("version", false, "print the version and exit")
	lookup := flag.String("lookup", "", "resolve NAME; exit 2 when that fails")
	certs := flag.Bool("certs", false, "load the system CA roots; exit 3 when there are none")
	flag.Parse()
	switch {
	case *lookup != "":
		addrs, err := net.LookupHost(*lookup)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lookup:", err)
			os.Exit(2)
		}
		fmt.Println(addrs)
	case *certs:
		pool, err := x509.SystemCertPool()
		if err != nil {
			fmt.Fprintln(os.Stderr, "certs:", err)
			os.Exit(3)
		}
		n := len(pool.Subjects()) //nolint:staticcheck // the count of a loaded pool is what is asked
		if n == 0 {
			fmt.Fprintln(os.Stderr, "certs: the system pool is empty")
			os.Exit(3)
		}
		fmt.Println(n, "roots")
	case *version:
		fmt.Println("kiln-corpus 1.0,", extra())
	default:
		fmt.Println("kiln-corpus: pass --version, --lookup NAME or --certs")
	}
}
`
	corpusCgo = `//go:build cgo

package main

/*
#cgo LDFLAGS: -lm
#include <math.h>
*/
import "C"

import "fmt"

func extra() string {
	x := 27.0
	return fmt.Sprintf("cgo: cbrt(%g) = %g", x, float64(C.cbrt(C.double(x))))
}
`
	corpusNoCgo = `//go:build !cgo

package main

func extra() string { return "pure Go" }
`

	// libkilnx: an extra shared library the image may or may not carry.
	kilnxLib = "int kilnx(void) { return 42; }\n"
	// libkilnx-y: the same function, through a second library.
	kilnyLib  = "int kilny(void) { return 7; }\n"
	kilnxyLib = "int kilny(void);\nint kilnx(void) { return 35 + kilny(); }\n"
	kilnxApp  = `#include <stdio.h>
int kilnx(void);
int main(void) { printf("kilnx() = %d\n", kilnx()); return 0; }
`
	// libfoo.so.1: FOO_2.0 is new; the old library defines FOO_1.0 only.
	fooNew    = "int foo1(void) { return 1; }\nint foo2(void) { return 2; }\n"
	fooNewMap = "FOO_1.0 { global: foo1; local: *; };\nFOO_2.0 { global: foo2; } FOO_1.0;\n"
	fooOld    = "int foo1(void) { return 1; }\n"
	fooOldMap = "FOO_1.0 { global: foo1; local: *; };\n"
	fooApp    = `#include <stdio.h>
int foo1(void);
int foo2(void);
int main(void) { printf("foo1() + foo2() = %d\n", foo1() + foo2()); return 0; }
`
	// hello needs __libc_start_main@GLIBC_2.34 from the host's glibc.
	helloApp = `#include <stdio.h>
int main(void) { puts("hello"); return 0; }
`
	// oldLibc is a stand-in libc.so.6 whose versions stop at GLIBC_2.31,
	// as in build/preflight_test.go.
	oldLibc    = "int kiln_syma(void){return 0;}\nint kiln_symb(void){return 1;}\nint kiln_symc(void){return 2;}\nint kiln_symd(void){return 3;}\n"
	oldLibcMap = "GLIBC_2.2.5 { global: kiln_syma; };\nGLIBC_2.17 { global: kiln_symb; } GLIBC_2.2.5;\nGLIBC_2.28 { global: kiln_symc; } GLIBC_2.17;\nGLIBC_2.31 { global: kiln_symd; } GLIBC_2.28;\n"
)

// artifact is something built once per test run: its path, or why it
// cannot be built here (skip) or failed to build (err).
type artifact struct {
	once sync.Once
	path string
	skip string
	err  error
}

// corpus holds what every case shares: the stand-in bases and the
// programs, built on first use.
type corpus struct {
	dir     string
	layout  layout.Path
	digests map[string]v1.Hash
	goBin   string

	mu   sync.Mutex
	arts map[string]*artifact

	baseMu  sync.Mutex
	baseFSs map[string]*verify.FS
}

func newCorpus(t *testing.T) *corpus {
	t.Helper()
	dir := t.TempDir()
	digests, err := testbase.Write(filepath.Join(dir, "bases"))
	var missing *testbase.MissingHostFileError
	if errors.As(err, &missing) {
		t.Skipf("the stand-in bases cannot be built here: %v", err)
	}
	if err != nil {
		t.Fatalf("writing the stand-in bases: %v", err)
	}
	p, err := layout.FromPath(filepath.Join(dir, "bases"))
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	return &corpus{dir: dir, layout: p, digests: digests, goBin: goBin, arts: map[string]*artifact{}, baseFSs: map[string]*verify.FS{}}
}

// get returns the artifact name, building it on first use; it skips the
// test when a tool is missing.
func (c *corpus) get(t *testing.T, name string) string {
	t.Helper()
	p, skip, err := c.buildOnce(name)
	switch {
	case skip != "":
		t.Skip(skip)
	case err != nil:
		t.Fatalf("building %s: %v", name, err)
	}
	return p
}

// buildOnce builds name the first time it is asked for.
func (c *corpus) buildOnce(name string) (string, string, error) {
	c.mu.Lock()
	a := c.arts[name]
	if a == nil {
		a = &artifact{}
		c.arts[name] = a
	}
	c.mu.Unlock()
	a.once.Do(func() { a.path, a.skip, a.err = c.build(name) })
	return a.path, a.skip, a.err
}

func (c *corpus) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(c.get(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// missingTool names the Debian package of a tool that is not installed.
func missingTool(tool, pkg string) string {
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Sprintf("%s is not installed (apt-get install -y %s); CI installs it", tool, pkg)
	}
	return ""
}

// cBuild is one gcc run: sources written to its directory, artifacts
// copied in under the names the link asks for, and the arguments.
type cBuild struct {
	cc   string
	srcs map[string]string
	deps map[string]string // file name in the build dir -> artifact
	args []string
}

func cBuilds(name string) (cBuild, bool) {
	lib := func(cc, src, soname string, extra ...string) cBuild {
		return cBuild{cc: cc, srcs: map[string]string{"lib.c": src},
			args: append([]string{"-shared", "-fPIC", "-Wl,-soname," + soname, "lib.c"}, extra...)}
	}
	app := func(cc, src string, deps map[string]string, extra ...string) cBuild {
		return cBuild{cc: cc, srcs: map[string]string{"app.c": src}, deps: deps, args: append([]string{"app.c"}, extra...)}
	}
	kilnx := map[string]string{"libkilnx.so": "libkilnx.so"}
	kilnxy := map[string]string{"libkilnx.so": "libkilnx-y.so", "libkilny.so": "libkilny.so"}
	// /app's $ORIGIN is "/", so $ORIGIN/lib would be /lib, which the
	// loader searches anyway: /kiln-lib is searched only through the
	// binary's own run path.
	runpath := []string{"-Wl,-rpath,$ORIGIN/kiln-lib", "-Wl,--enable-new-dtags"}
	rpath := []string{"-Wl,-rpath,$ORIGIN/kiln-lib", "-Wl,--disable-new-dtags"}
	builds := map[string]cBuild{
		"libkilnx.so":       lib("gcc", kilnxLib, "libkilnx.so"),
		"arm64-libkilnx.so": lib("aarch64-linux-gnu-gcc", kilnxLib, "libkilnx.so"),
		"musl-libkilnx.so":  lib("musl-gcc", kilnxLib, "libkilnx.so"),
		"libkilny.so":       lib("gcc", kilnyLib, "libkilny.so"),
		"libkilnx-y.so": {cc: "gcc", srcs: map[string]string{"lib.c": kilnxyLib}, deps: map[string]string{"libkilny.so": "libkilny.so"},
			args: []string{"-shared", "-fPIC", "-Wl,-soname,libkilnx.so", "lib.c", "-L.", "-lkilny"}},
		"libkilnx-y-origin.so": {cc: "gcc", srcs: map[string]string{"lib.c": kilnxyLib}, deps: map[string]string{"libkilny.so": "libkilny.so"},
			args: []string{"-shared", "-fPIC", "-Wl,-soname,libkilnx.so", "lib.c", "-L.", "-lkilny", "-Wl,-rpath,$ORIGIN/deps", "-Wl,--enable-new-dtags"}},
		"musl-libkilny.so": lib("musl-gcc", kilnyLib, "libkilny.so"),
		"musl-libkilnx-y.so": {cc: "musl-gcc", srcs: map[string]string{"lib.c": kilnxyLib}, deps: map[string]string{"libkilny.so": "musl-libkilny.so"},
			args: []string{"-shared", "-fPIC", "-Wl,-soname,libkilnx.so", "lib.c", "-L.", "-lkilny"}},
		"musl-c-kilnx-y-runpath": app("musl-gcc", kilnxApp, map[string]string{"libkilnx.so": "musl-libkilnx-y.so", "libkilny.so": "musl-libkilny.so"},
			append([]string{"-L.", "-lkilnx", "-Wl,-rpath-link,."}, runpath...)...),
		"c-kilnx":           app("gcc", kilnxApp, kilnx, "-L.", "-lkilnx"),
		"c-kilnx-runpath":   app("gcc", kilnxApp, kilnx, append([]string{"-L.", "-lkilnx"}, runpath...)...),
		"musl-c-kilnx":      app("musl-gcc", kilnxApp, map[string]string{"libkilnx.so": "musl-libkilnx.so"}, "-L.", "-lkilnx"),
		"c-kilnx-y-runpath": app("gcc", kilnxApp, kilnxy, append([]string{"-L.", "-lkilnx", "-Wl,-rpath-link,."}, runpath...)...),
		"c-kilnx-y-rpath":   app("gcc", kilnxApp, kilnxy, append([]string{"-L.", "-lkilnx", "-Wl,-rpath-link,."}, rpath...)...),
		"libfoo-new": {cc: "gcc", srcs: map[string]string{"lib.c": fooNew, "foo.map": fooNewMap},
			args: []string{"-shared", "-fPIC", "-Wl,--version-script=foo.map", "-Wl,-soname,libfoo.so.1", "lib.c"}},
		"libfoo-old": {cc: "gcc", srcs: map[string]string{"lib.c": fooOld, "foo.map": fooOldMap},
			args: []string{"-shared", "-fPIC", "-Wl,--version-script=foo.map", "-Wl,-soname,libfoo.so.1", "lib.c"}},
		"c-foo":   app("gcc", fooApp, map[string]string{"libfoo.so.1": "libfoo-new"}, "./libfoo.so.1"),
		"c-hello": app("gcc", helloApp, nil),
		"libc-old": {cc: "gcc", srcs: map[string]string{"lib.c": oldLibc, "libc.map": oldLibcMap},
			args: []string{"-shared", "-fPIC", "-nostdlib", "-Wl,--version-script=libc.map", "-Wl,-soname,libc.so.6", "lib.c"}},
	}
	b, ok := builds[name]
	return b, ok
}

var ccPackages = map[string]string{"gcc": "gcc", "musl-gcc": "musl-tools", "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu"}

// build makes one artifact: the corpus program for a libc and
// architecture (go-*), or a C object of cBuilds.
func (c *corpus) build(name string) (string, string, error) {
	dir := filepath.Join(c.dir, "build", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	out := filepath.Join(dir, "out")
	goBuilds := map[string][]string{
		"go-static-amd64": {"CGO_ENABLED=0", "GOARCH=amd64"},
		"go-static-arm64": {"CGO_ENABLED=0", "GOARCH=arm64"},
		"go-glibc-amd64":  {"CGO_ENABLED=1", "GOARCH=amd64", "CC=gcc"},
		"go-glibc-arm64":  {"CGO_ENABLED=1", "GOARCH=arm64", "CC=aarch64-linux-gnu-gcc"},
		"go-musl-amd64":   {"CGO_ENABLED=1", "GOARCH=amd64", "CC=musl-gcc"},
	}
	if env, ok := goBuilds[name]; ok {
		for _, kv := range env {
			if cc, ok := strings.CutPrefix(kv, "CC="); ok {
				if why := missingTool(cc, ccPackages[cc]); why != "" {
					return "", why, nil
				}
			}
		}
		return out, "", c.goBuild(dir, out, env...)
	}
	b, ok := cBuilds(name)
	if !ok {
		return "", "", fmt.Errorf("no artifact %q", name)
	}
	if why := missingTool(b.cc, ccPackages[b.cc]); why != "" {
		return "", why, nil
	}
	for f, dep := range b.deps {
		p, skip, err := c.buildOnce(dep)
		if skip != "" || err != nil {
			return "", skip, err
		}
		if err := copyFile(p, filepath.Join(dir, f)); err != nil {
			return "", "", err
		}
	}
	for f, content := range b.srcs {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			return "", "", err
		}
	}
	cmd := exec.Command(b.cc, append([]string{"-O2", "-o", out}, b.args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("%s %s: %v\n%s", b.cc, strings.Join(b.args, " "), err, out)
	}
	return out, "", nil
}

// goBuild builds the corpus program with an explicit environment: the
// host's caches (shared with every other build), nothing else inherited.
func (c *corpus) goBuild(dir, out string, env ...string) error {
	files := map[string]string{"go.mod": "module kiln.test/corpus\n\ngo 1.22\n", "main.go": corpusMain, "cgo.go": corpusCgo, "nocgo.go": corpusNoCgo}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command(c.goBin, "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOWORK=off", "GOPROXY=off", "GOOS=linux"}
	for _, k := range []string{"GOCACHE", "GOPATH", "GOMODCACHE", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(env, " "), err, b)
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// base returns the stand-in name for linux/arch from the layout.
func (c *corpus) base(t *testing.T, name, arch string) v1.Image {
	t.Helper()
	root, err := c.layout.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := root.ImageIndex(c.digests[name])
	if err != nil {
		t.Fatalf("stand-in %s: %v", name, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("the stand-in %s has no linux/%s", name, arch)
	return nil
}

// baseFile reads a file of a stand-in base, e.g. its own loader.
func (c *corpus) baseFile(t *testing.T, name, arch, p string) []byte {
	t.Helper()
	key := name + "/" + arch
	c.baseMu.Lock()
	fsys := c.baseFSs[key]
	if fsys == nil {
		var err error
		if fsys, err = verify.Flatten(c.base(t, name, arch), verify.Limits{}); err != nil {
			c.baseMu.Unlock()
			t.Fatal(err)
		}
		c.baseFSs[key] = fsys
	}
	c.baseMu.Unlock()
	b, err := fsys.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entry is one entry of a case's layer.
type entry struct {
	path string // without the leading slash
	typ  byte   // tar.TypeReg (the zero value means it), tar.TypeSymlink, tar.TypeDir
	mode int64
	data []byte
	link string
	// from gives data when the case runs, for content read from the
	// corpus's build artifacts or bases (runCase calls it).
	from func(t *testing.T, c *corpus) []byte
}

func file(p string, mode int64, data []byte) entry {
	return entry{path: p, typ: tar.TypeReg, mode: mode, data: data}
}

func fileFrom(p string, mode int64, from func(t *testing.T, c *corpus) []byte) entry {
	return entry{path: p, typ: tar.TypeReg, mode: mode, from: from}
}

// built is an executable file holding the corpus artifact name.
func built(p, name string) entry {
	return fileFrom(p, 0o755, func(t *testing.T, c *corpus) []byte { return c.read(t, name) })
}

func symlink(p, target string) entry {
	return entry{path: p, typ: tar.TypeSymlink, mode: 0o777, link: target}
}

// whiteout hides p of the layers below.
func whiteout(p string) entry {
	return entry{path: path.Join(path.Dir(p), ".wh."+path.Base(p)), typ: tar.TypeReg, mode: 0o644}
}

// layer writes entries as one uncompressed tar layer, in order, with
// fixed owners and mtimes.
func layer(t *testing.T, entries []entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Typeflag: typ, Name: e.path, Mode: e.mode, Size: int64(len(e.data)), Linkname: e.link, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
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
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ldconfigLayer runs the host's ldconfig (glibc's, as the base's) over
// the image and returns the cache it writes, for a layer on top.
func ldconfigLayer(t *testing.T, img v1.Image) []entry {
	t.Helper()
	ldconfig, err := exec.LookPath("ldconfig")
	if err != nil {
		t.Skip("ldconfig is not installed (apt-get install -y libc-bin)")
	}
	if os.Geteuid() != 0 {
		t.Skip("ldconfig -r chroots: it needs root")
	}
	fsys, err := verify.Flatten(img, verify.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	root := materialize(t, fsys)
	cmd := exec.Command(ldconfig, "-X", "-r", root)
	cmd.Env = []string{"LC_ALL=C"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldconfig -X -r: %v\n%s", err, out)
	}
	cache, err := os.ReadFile(filepath.Join(root, "etc", "ld.so.cache"))
	if err != nil {
		t.Fatal(err)
	}
	return []entry{file("etc/ld.so.cache", 0o644, cache)}
}

// garbage is n deterministic bytes that are no ELF file.
func garbage(n int) []byte {
	var out []byte
	sum := sha256.Sum256([]byte("kiln corpus garbage"))
	for len(out) < n {
		out = append(out, sum[:]...)
		sum = sha256.Sum256(sum[:])
	}
	return out[:n]
}

// realRun is one run of the image's binary outside kiln.
type realRun struct {
	exit   int // -1: killed or not started
	stdout string
	stderr string
}

func (r realRun) ok() bool { return r.exit == 0 }

func (r realRun) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.exit, strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
}

// reality runs an image the way a container runtime would, without any of
// kiln's sandbox code: the image root written by FS.Materialize, new
// mount, pid and network namespaces with /proc mounted (as a container has
// it; glibc needs it for $ORIGIN), chroot as the image user, the image's
// environment, and qemu-user only when the image's platform (not the
// binary) is foreign, as with binfmt_misc on a multi-arch host.
type reality struct {
	root string
	arch string // the image config's architecture
	uid  int
	gid  int
	env  []string
}

func newReality(t *testing.T, img v1.Image, fsys *verify.FS) *reality {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the reality check chroots into the image: it needs root")
	}
	for _, tool := range []string{"unshare", "chroot"} {
		if why := missingTool(tool, "util-linux coreutils"); why != "" {
			t.Skip(why)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	root := materialize(t, fsys)
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o555); err != nil {
		t.Fatal(err)
	}
	r := &reality{root: root, arch: cf.Architecture, env: cf.Config.Env}
	if r.arch != runtime.GOARCH {
		if why := missingTool("qemu-"+qemuName(r.arch)+"-static", "qemu-user-static"); why != "" {
			t.Skip(why)
		}
		q, _ := exec.LookPath("qemu-" + qemuName(r.arch) + "-static")
		if err := copyFile(q, filepath.Join(root, "qemu")); err != nil {
			t.Fatal(err)
		}
	}
	r.uid, r.gid = imageIDs(t, fsys, cf.Config.User)
	return r
}

// materialize writes fsys into a new 0755 directory and returns it: a
// t.TempDir is 0700, which the image's users could not enter as their root.
func materialize(t *testing.T, fsys *verify.FS) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Materialize(root); err != nil {
		t.Fatalf("materializing the image: %v", err)
	}
	return root
}

func qemuName(goarch string) string {
	if goarch == "arm64" {
		return "aarch64"
	}
	return goarch
}

// imageIDs turns the config user into ids through the image's own
// /etc/passwd, as a runtime does.
func imageIDs(t *testing.T, fsys *verify.FS, user string) (int, int) {
	t.Helper()
	name, group, _ := strings.Cut(user, ":")
	uid, gid := 0, -1
	if name != "" {
		passwd, _ := fsys.ReadFile("/etc/passwd")
		found := false
		for _, line := range strings.Split(string(passwd), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 4 && (f[0] == name || f[2] == name) {
				uid, _ = strconv.Atoi(f[2])
				gid, _ = strconv.Atoi(f[3])
				found = true
				break
			}
		}
		if !found {
			n, err := strconv.Atoi(name)
			if err != nil {
				t.Fatalf("the image user %q is not in its /etc/passwd", name)
			}
			uid = n
		}
	}
	if group != "" {
		n, err := strconv.Atoi(group)
		if err != nil {
			t.Fatalf("the corpus uses numeric groups only, not %q", group)
		}
		gid = n
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid
}

// run runs the binary at bin with args (and extra environment) in the
// image.
func (r *reality) run(t *testing.T, bin string, extraEnv []string, args ...string) realRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := []string{"--mount", "--pid", "--net", "--fork", "--mount-proc=" + filepath.Join(r.root, "proc"),
		"chroot", fmt.Sprintf("--userspec=%d:%d", r.uid, r.gid), r.root}
	if r.arch != runtime.GOARCH {
		argv = append(argv, "/qemu")
	}
	argv = append(argv, bin)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, "unshare", argv...)
	cmd.Env = append(append([]string{}, r.env...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := realRun{exit: -1, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.exit = 0
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	default:
		t.Fatalf("running unshare: %v", err)
	}
	return res
}

// golden normalisation: what differs from run to run or machine to
// machine (temp paths, digests that depend on the installed Debian
// packages, counts that depend on the toolchain's versions).
var normalisers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`sha256:[0-9a-f]{64}`), "sha256:<digest>"},
	{regexp.MustCompile(`kiln-root-[0-9]+`), "kiln-root-<n>"},
	{regexp.MustCompile(`\d+ versioned symbol needs`), "<n> versioned symbol needs"},
	{regexp.MustCompile(`has \d+ certificates`), "has <n> certificates"},
	{regexp.MustCompile(`\d+ quer(y|ies)`), "<n> queries"},
	{regexp.MustCompile(`after [0-9.]+m?s`), "after <duration>"},
}

func normalise(rep *verify.Report, tempDirs ...string) []byte {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		panic(err)
	}
	s := string(b)
	for _, d := range tempDirs {
		if d != "" {
			s = strings.ReplaceAll(s, d, "<tmp>")
		}
	}
	for _, n := range normalisers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return []byte(s + "\n")
}

// checkGolden compares got with testdata/corpus/<name>.json, or writes it
// with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "corpus", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading the golden report (regenerate with go test ./verify -run TestCorpus -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the report differs from %s (regenerate with -update if the change is intended):\n%s", p, lineDiff(string(want), string(got)))
	}
}

// lineDiff lists the lines that differ, want first.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
