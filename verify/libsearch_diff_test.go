package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/targets"
)

// The loader's differential test: a C program needs libkilnx.so, which
// needs libkilny.so; each copy of a library placed in the image says
// which it is (an id patched into its bytes), the program prints the ids
// of the two it got, and kiln's link.needed must find exactly those, or
// fail exactly when the real loader (glibc's ld.so, musl's) does not
// start the program. The program's and libkilnx.so's run paths are
// placeholders patched per input, so one build serves every run path.

const (
	loaderIDLen    = 24
	loaderPathLen  = 200
	loaderXMarker  = "KILNXID:"
	loaderYMarker  = "KILNYID:"
	loaderRPMarker = "KILNRP"
)

var (
	loaderIDPad = strings.Repeat("#", loaderIDLen)
	loaderRPPad = loaderRPMarker + strings.Repeat("X", loaderPathLen-len(loaderRPMarker))
)

// loaderSources are the C sources of the test's objects.
var loaderSources = map[string]string{
	"y.c":   `const char *kilny_id(void) { return "` + loaderYMarker + loaderIDPad + `"; }` + "\n",
	"x.c":   `const char *kilny_id(void); const char *kilnx_id(void) { return "` + loaderXMarker + loaderIDPad + `"; } const char *kilnx_dep(void) { return kilny_id(); }` + "\n",
	"app.c": "#include <stdio.h>\nconst char *kilnx_id(void); const char *kilnx_dep(void);\nint main(void) { printf(\"x=%s y=%s\\n\", kilnx_id() + 8, kilnx_dep() + 8); return 0; }\n",
}

// loaderObjs are the objects of one libc: the program and libkilnx.so in
// a DT_RUNPATH and a DT_RPATH build, libkilny.so, and libkilnx.so for
// another machine.
type loaderObjs struct {
	appRunpath, appRpath, xRunpath, xRpath, y, xForeign []byte
}

var loaderBuilds builds[string, loaderObjs]

// buildLoaderObjs compiles the objects for libc (glibc or musl), cached
// on disk by their sources.
func buildLoaderObjs(t testing.TB, libc string) loaderObjs {
	t.Helper()
	return loaderBuilds.get(t, libc, "the loader test's objects for "+libc, func() (loaderObjs, string, error) { return buildLoaderObjsOnce(libc) })
}

func buildLoaderObjsOnce(libc string) (loaderObjs, string, error) {
	cc, pkg := "gcc", "gcc"
	if libc == "musl" {
		cc, pkg = "musl-gcc", "musl-tools"
	}
	for tool, p := range map[string]string{cc: pkg, "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return loaderObjs{}, fmt.Sprintf("%s is not installed (apt-get install -y %s)", tool, p), nil
		}
	}
	h := sha256.New()
	for _, k := range []string{"app.c", "x.c", "y.c"} {
		h.Write([]byte(loaderSources[k]))
	}
	h.Write([]byte(libc))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kiln-test", "loader", hex.EncodeToString(h.Sum(nil)[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return loaderObjs{}, "", err
	}
	for name, src := range loaderSources {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			return loaderObjs{}, "", err
		}
	}
	rp := "-Wl,-rpath," + loaderRPPad
	builds := []struct {
		out, cc string
		args    []string
	}{
		{"libkilny.so", cc, []string{"-shared", "-fPIC", "-Wl,-soname,libkilny.so", "y.c"}},
		{"x-runpath.so", cc, []string{"-shared", "-fPIC", "-Wl,-soname,libkilnx.so", "x.c", "-L.", "-lkilny", rp, "-Wl,--enable-new-dtags"}},
		{"x-rpath.so", cc, []string{"-shared", "-fPIC", "-Wl,-soname,libkilnx.so", "x.c", "-L.", "-lkilny", rp, "-Wl,--disable-new-dtags"}},
		{"libkilnx.so", cc, []string{"-shared", "-fPIC", "-Wl,-soname,libkilnx.so", "x.c", "-L.", "-lkilny"}},
		{"app-runpath", cc, []string{"app.c", "-L.", "-lkilnx", "-Wl,-rpath-link,.", rp, "-Wl,--enable-new-dtags"}},
		{"app-rpath", cc, []string{"app.c", "-L.", "-lkilnx", "-Wl,-rpath-link,.", rp, "-Wl,--disable-new-dtags"}},
		{"x-arm64.so", "aarch64-linux-gnu-gcc", []string{"-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libkilnx.so", "x.c"}},
	}
	for _, b := range builds {
		if _, err := os.Stat(filepath.Join(dir, b.out)); err == nil {
			continue
		}
		cmd := exec.Command(b.cc, append([]string{"-O2", "-o", b.out + ".tmp"}, b.args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return loaderObjs{}, "", fmt.Errorf("%s %s: %v\n%s", b.cc, strings.Join(b.args, " "), err, out)
		}
		if err := os.Rename(filepath.Join(dir, b.out+".tmp"), filepath.Join(dir, b.out)); err != nil {
			return loaderObjs{}, "", err
		}
	}
	read := func(name string) []byte {
		b, rerr := os.ReadFile(filepath.Join(dir, name))
		if rerr != nil && err == nil {
			err = rerr
		}
		return b
	}
	o := loaderObjs{appRunpath: read("app-runpath"), appRpath: read("app-rpath"), xRunpath: read("x-runpath.so"),
		xRpath: read("x-rpath.so"), y: read("libkilny.so"), xForeign: read("x-arm64.so")}
	return o, "", err
}

// patch replaces the placeholder that starts with marker (and runs for n
// bytes) with s, padded with NULs: a run path or a library's id.
func patch(t testing.TB, obj []byte, marker string, n int, s string) []byte {
	t.Helper()
	i := bytes.Index(obj, []byte(marker))
	if i < 0 || len(s) > n {
		t.Fatalf("cannot patch %q into the object (marker found: %v, %d > %d bytes)", s, i >= 0, len(s), n)
	}
	out := bytes.Clone(obj)
	copy(out[i:i+n], append([]byte(s), make([]byte, n-len(s))...))
	return out
}

// withID is a library copy that reports id.
func withID(t testing.TB, lib []byte, marker, id string) []byte {
	t.Helper()
	if len(id) > loaderIDLen {
		id = id[:loaderIDLen]
	}
	i := bytes.Index(lib, []byte(marker))
	if i < 0 {
		t.Fatalf("no %s in the library", marker)
	}
	out := bytes.Clone(lib)
	copy(out[i+len(marker):i+len(marker)+loaderIDLen], id+strings.Repeat("#", loaderIDLen-len(id)))
	return out
}

// loaderInput is one image for the loader.
type loaderInput struct {
	libc     string // glibc or musl
	rpath    bool   // DT_RPATH builds instead of DT_RUNPATH
	appRP    string // the program's run path
	xRP      string // libkilnx.so's run path
	appAt    string // where the program is ("app" when empty); /app links to it
	llp      *string
	libs     []loaderLib
	extra    []hent
	uid      int
	ldconfig bool // run ldconfig -r over the image for /etc/ld.so.cache
	muslPath *string
}

// loaderLib is one entry named like a library somewhere in the image.
type loaderLib struct {
	dir, name string // name: libkilnx.so or libkilny.so
	kind      string // copy (the default), garbage, dir, foreign, private, link:TARGET
	id        string // what a copy reports; dir/name when empty
}

func str(s string) *string { return &s }

// loaderImage builds the input's image: the libc, the program, the
// library entries, then /etc/ld.so.cache from the real ldconfig when
// asked.
func loaderImage(t testing.TB, in loaderInput) (diffImage, map[string]string) {
	t.Helper()
	objs := buildLoaderObjs(t, in.libc)
	app, x := objs.appRunpath, objs.xRunpath
	if in.rpath {
		app, x = objs.appRpath, objs.xRpath
	}
	app = patch(t, app, loaderRPMarker, loaderPathLen, in.appRP)
	x = patch(t, x, loaderRPMarker, loaderPathLen, in.xRP)
	ents := libcEntries(t, in.libc)
	appAt := in.appAt
	if appAt == "" {
		appAt = "app"
	}
	ents = append(ents, hent{path: appAt, mode: 0o755, data: app})
	if appAt != "app" {
		ents = append(ents, hlink("app", "/"+appAt))
	}
	ids := map[string]string{} // real path -> id
	for _, l := range in.libs {
		p := path.Join(l.dir, l.name)
		id := l.id
		if id == "" {
			id = p
		}
		lib, marker := x, loaderXMarker
		if l.name == "libkilny.so" {
			lib, marker = objs.y, loaderYMarker
		}
		switch {
		case l.kind == "" || l.kind == "copy":
			ents = append(ents, hent{path: p, mode: 0o755, data: withID(t, lib, marker, id)})
			ids["/"+p] = withIDLabel(id)
		case l.kind == "private":
			ents = append(ents, hent{path: p, mode: 0o600, data: withID(t, lib, marker, id)})
			ids["/"+p] = withIDLabel(id)
		case l.kind == "garbage":
			ents = append(ents, hent{path: p, mode: 0o755, data: []byte("this is not an ELF object, just a file named like one\n")})
		case l.kind == "dir":
			ents = append(ents, hdir(p, 0o755))
		case l.kind == "foreign":
			ents = append(ents, hent{path: p, mode: 0o755, data: objs.xForeign})
		case strings.HasPrefix(l.kind, "link:"):
			ents = append(ents, hlink(p, strings.TrimPrefix(l.kind, "link:")))
		}
	}
	if in.muslPath != nil {
		ents = append(ents, hfile("etc/ld-musl-x86_64.path", 0o644, *in.muslPath))
	}
	ents = append(ents, in.extra...)
	base := []hent{hdir("etc", 0o755), hdir("tmp", 0o1777)}
	im := materializeDiff(t, base, ents)
	if in.ldconfig {
		out, err := exec.Command("ldconfig", "-X", "-r", im.root).CombinedOutput()
		if err != nil {
			t.Fatalf("ldconfig -X -r: %v\n%s", err, out)
		}
		cache, err := os.ReadFile(filepath.Join(im.root, "etc", "ld.so.cache"))
		if err != nil {
			t.Fatal(err)
		}
		im = materializeDiff(t, base, append(ents, hfile("etc/ld.so.cache", 0o644, string(cache))))
	}
	return im, ids
}

func withIDLabel(id string) string {
	if len(id) > loaderIDLen {
		id = id[:loaderIDLen]
	}
	return id
}

// checkLoaderDiff predicts with link.needed and runs the program.
func checkLoaderDiff(t testing.TB, in loaderInput) {
	t.Helper()
	im, ids := loaderImage(t, in)
	var env []string
	if in.llp != nil {
		env = append(env, "LD_LIBRARY_PATH="+*in.llp)
	}
	p := &proc{fsys: im.fsys, env: env, uid: in.uid, gid: in.uid, cwd: "/"}
	real, e, err := im.fsys.Resolve("/app")
	if err != nil {
		t.Fatal(err)
	}
	data, err := im.fsys.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := ReadELF(data)
	if err != nil {
		t.Fatal(err)
	}
	_ = e
	s := &subject{fsys: im.fsys, proc: p, env: env, binary: real, elf: bin, libc: targets.Libc(in.libc),
		in: Input{Platform: targets.Platform{OS: "linux", Arch: "amd64"}}}
	rep := &Report{}
	s.checkNeeded(rep, s.checkInterp(rep))
	f, _ := rep.Find("link.needed")
	predicted := "fails"
	if f.Status == Pass {
		x, y := s.graph.byName["libkilnx.so"], s.graph.byName["libkilny.so"]
		if x == nil || y == nil {
			t.Fatalf("link.needed passed without both libraries: %+v", f)
		}
		predicted = fmt.Sprintf("x=%s y=%s", orUnknown(ids[x.path]), orUnknown(ids[y.path]))
	}
	run := im.run(t, in.uid, in.uid, nil, env, "/", "/app")
	got := "fails"
	if run.exit == 0 {
		got = strings.ReplaceAll(strings.TrimSpace(run.stdout), "#", "")
	}
	t.Logf("kiln: %s (%s); real: %s %s", predicted, f.Evidence, got, strings.TrimSpace(run.stderr))
	if got != predicted {
		t.Errorf("DISAGREEMENT %s: kiln predicts %s (link.needed %s: %s), the loader: %s (exit %d, %s)", in.libc, predicted, f.Status, f.Evidence, got, run.exit, strings.TrimSpace(run.stderr))
	}
}

// std places libkilnx.so and libkilny.so where both loaders look by
// default.
func std() []loaderLib {
	return []loaderLib{{dir: "lib", name: "libkilnx.so"}, {dir: "usr/lib", name: "libkilny.so"}}
}

func xAt(dir string, kind ...string) loaderLib {
	l := loaderLib{dir: dir, name: "libkilnx.so"}
	if len(kind) > 0 {
		l.kind = kind[0]
	}
	return l
}

func yAt(dir string) loaderLib { return loaderLib{dir: dir, name: "libkilny.so"} }

// loaderTable is the hand-written input of the loader's differential
// test, each row run against glibc and musl (or the one named); rows
// found by fuzzing are marked "found:".
var loaderTable = []struct {
	name string
	only string // glibc or musl; "" runs both
	in   loaderInput
}{
	{"default directories", "", loaderInput{libs: std()}},
	{"missing", "", loaderInput{libs: []loaderLib{yAt("lib")}}},
	{"$ORIGIN run path", "", loaderInput{appRP: "$ORIGIN/kiln-lib", libs: []loaderLib{xAt("kiln-lib"), yAt("lib")}}},
	{"${ORIGIN} run path", "", loaderInput{appRP: "${ORIGIN}/kiln-lib", libs: []loaderLib{xAt("kiln-lib"), yAt("lib")}}},
	{"$ORIGINX is no token for glibc", "", loaderInput{appRP: "$ORIGINX/kiln-lib", libs: []loaderLib{xAt("X/kiln-lib"), xAt("usr/lib"), yAt("lib")}}},
	{"$ORIGIN alone", "", loaderInput{appRP: "$ORIGIN", libs: []loaderLib{xAt(""), xAt("usr/lib"), yAt("lib")}}},
	{"$LIB", "", loaderInput{appRP: "/opt/$LIB", libs: []loaderLib{xAt("opt/lib/x86_64-linux-gnu"), xAt("usr/local/lib"), yAt("lib")}}},
	{"${PLATFORM}", "", loaderInput{appRP: "/opt/${PLATFORM}-dir", libs: []loaderLib{xAt("opt/x86_64-dir"), xAt("usr/local/lib"), yAt("lib")}}},
	{"unknown token stays", "", loaderInput{appRP: "/opt/$FOO", libs: []loaderLib{xAt("opt/$FOO"), xAt("usr/local/lib"), yAt("lib")}}},
	{"empty element is the working directory", "", loaderInput{appRP: ":/nowhere", libs: []loaderLib{xAt(""), yAt("lib")}}},
	{"trailing slashes", "", loaderInput{appRP: "/opt/a//", libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"doubled separators", "", loaderInput{appRP: "/nowhere::/opt/a", libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"relative element", "", loaderInput{appRP: "opt/a", libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"dot-dot through a symlink", "", loaderInput{appRP: "/opt/l/../deps", libs: []loaderLib{{dir: "opt", name: "l", kind: "link:/srv/real"}, xAt("srv/deps"), xAt("opt/deps", "garbage"), yAt("lib")}, extra: []hent{hdir("srv/real", 0o755)}}},
	{"semicolon in LD_LIBRARY_PATH", "", loaderInput{llp: str("/nowhere;/opt/a"), libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"semicolon in a run path", "", loaderInput{appRP: "/nowhere;/opt/a", libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"newline in LD_LIBRARY_PATH", "", loaderInput{llp: str("/nowhere\n/opt/a"), libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"LD_LIBRARY_PATH empty", "", loaderInput{llp: str(""), libs: std()}},
	{"LD_LIBRARY_PATH of a colon", "", loaderInput{llp: str(":"), libs: []loaderLib{xAt(""), yAt("lib")}}},
	{"$ORIGIN in LD_LIBRARY_PATH", "", loaderInput{llp: str("$ORIGIN/kiln-lib"), libs: []loaderLib{xAt("kiln-lib"), yAt("lib")}}},
	{"LD_LIBRARY_PATH before DT_RUNPATH", "", loaderInput{appRP: "/opt/b", llp: str("/opt/a"), libs: []loaderLib{xAt("opt/a"), xAt("opt/b"), yAt("lib")}}},
	{"DT_RPATH before LD_LIBRARY_PATH (glibc)", "", loaderInput{rpath: true, appRP: "/opt/b", llp: str("/opt/a"), libs: []loaderLib{xAt("opt/a"), xAt("opt/b"), yAt("lib")}}},
	{"DT_RUNPATH is not inherited (glibc)", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a"), yAt("opt/a")}}},
	{"DT_RPATH is inherited", "", loaderInput{rpath: true, appRP: "/opt/a", libs: []loaderLib{xAt("opt/a"), yAt("opt/a")}}},
	{"a library's own $ORIGIN run path", "", loaderInput{appRP: "/opt/a", xRP: "$ORIGIN/deps", libs: []loaderLib{xAt("opt/a"), yAt("opt/a/deps")}}},
	{"origin of a symlinked library", "", loaderInput{appRP: "/kiln-lib", xRP: "$ORIGIN/deps", libs: []loaderLib{xAt("opt/real"), {dir: "kiln-lib", name: "libkilnx.so", kind: "link:/opt/real/libkilnx.so"}, yAt("kiln-lib/deps")}}},
	{"origin of a symlinked library, not its target", "", loaderInput{appRP: "/kiln-lib", xRP: "$ORIGIN/deps", libs: []loaderLib{xAt("opt/real"), {dir: "kiln-lib", name: "libkilnx.so", kind: "link:/opt/real/libkilnx.so"}, yAt("opt/real/deps")}}},
	{"origin of a symlinked program", "", loaderInput{appAt: "opt/bin/app", appRP: "$ORIGIN/kiln-lib", libs: []loaderLib{xAt("opt/bin/kiln-lib"), xAt("kiln-lib", "garbage"), yAt("lib")}}},
	{"another machine's library first", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a", "foreign"), xAt("lib"), yAt("lib")}}},
	{"a file that is no ELF first", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a", "garbage"), xAt("lib"), yAt("lib")}}},
	{"a directory named like the library", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a", "dir"), xAt("lib"), yAt("lib")}}},
	{"unreadable to the user", "", loaderInput{appRP: "/opt/a", uid: 65532, libs: []loaderLib{xAt("opt/a", "private"), xAt("lib"), yAt("lib")}}},
	{"unreadable, but root reads it", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a", "private"), xAt("lib"), yAt("lib")}}},
	{"dangling symlink first", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a", "link:/nowhere/libkilnx.so"), xAt("lib"), yAt("lib")}}},
	{"symlink loop first", "", loaderInput{appRP: "/opt/a", libs: []loaderLib{xAt("opt/a", "link:libkilnx.so"), xAt("lib"), yAt("lib")}}},
	{"symlink loop ends the list (glibc)", "", loaderInput{appRP: "/opt/a:/opt/b", libs: []loaderLib{xAt("opt/a", "link:libkilnx.so"), xAt("opt/b"), yAt("lib")}}},
	{"ld.so.cache", "glibc", loaderInput{ldconfig: true, libs: []loaderLib{xAt("opt/c"), yAt("lib")}, extra: []hent{hfile("etc/ld.so.conf", 0o644, "/opt/c\n")}}},
	{"ld.so.conf alone does nothing", "glibc", loaderInput{libs: []loaderLib{xAt("opt/c"), yAt("lib")}, extra: []hent{hfile("etc/ld.so.conf", 0o644, "/opt/c\n")}}},
	{"musl path file", "musl", loaderInput{muslPath: str("/opt/a\n/lib\n"), libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"musl path file replaces the defaults", "musl", loaderInput{muslPath: str("/opt/a"), libs: []loaderLib{xAt("opt/a"), yAt("usr/lib")}}},
	{"musl path file with spaces", "musl", loaderInput{muslPath: str("/opt/a /lib"), libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"musl path file empty", "musl", loaderInput{muslPath: str(""), libs: std()}},
	{"musl path file with a NUL", "musl", loaderInput{muslPath: str("/opt/b\x00/opt/a"), libs: []loaderLib{xAt("opt/a"), yAt("lib")}}},
	{"musl path file is a directory", "musl", loaderInput{libs: std(), extra: []hent{hdir("etc/ld-musl-x86_64.path", 0o755)}}},
	{"musl path file unreadable", "musl", loaderInput{uid: 65532, libs: std(), extra: []hent{{path: "etc/ld-musl-x86_64.path", mode: 0o600, data: []byte("/lib\n")}}}},
	{"as a user", "", loaderInput{uid: 65532, libs: std()}},
}

func TestLoaderDiff(t *testing.T) {
	diffNeedRoot(t)
	for _, tt := range loaderTable {
		for _, libc := range []string{"glibc", "musl"} {
			if tt.only != "" && tt.only != libc {
				continue
			}
			t.Run(tt.name+"/"+libc, func(t *testing.T) {
				t.Parallel()
				in := tt.in
				in.libc = libc
				checkLoaderDiff(t, in)
			})
		}
	}
}

// loaderDirs are where a generated library entry can go. None is a
// subdirectory glibc adds for the CPU (glibc-hwcaps/x86-64-v3, tls,
// x86_64): kiln does not model those (see README).
var loaderDirs = []string{"", "lib", "usr/lib", "usr/local/lib", "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu",
	"opt/a", "opt/b", "opt/a/deps", "kiln-lib", "kiln-lib/deps", "opt/bin/kiln-lib", "X/kiln-lib", "opt/lib/x86_64-linux-gnu", "opt/c", "srv"}

var loaderKinds = []string{"copy", "copy", "copy", "garbage", "dir", "foreign", "private", "link:/nowhere/x.so", "link:libkilnx.so", "link:/lib/libkilnx.so", "link:../lib/libkilnx.so"}

// FuzzLoaderDiff generates run paths, LD_LIBRARY_PATH, musl's path file
// and library placements (see decodeLoaderInput), against glibc's or
// musl's loader:
//
//	go test ./verify -run '^$' -fuzz FuzzLoaderDiff -fuzztime 10m -fuzzminimizetime 0
func FuzzLoaderDiff(f *testing.F) {
	diffNeedRoot(f)
	f.Add("$ORIGIN/kiln-lib", "", "", "", []byte{0x91, 0x12}, uint16(0))
	f.Add("/opt/a:/opt/b", "$ORIGIN/deps", "/nowhere;/opt/b", "/opt/a\n/lib", []byte{0x63, 0x70, 0x82, 0x12}, uint16(0x0005))
	f.Add(":", "${ORIGIN}/../lib", "$ORIGIN", "", []byte{0x00, 0x31, 0x68}, uint16(0x000e))
	f.Fuzz(func(t *testing.T, appRP, xRP, llp, muslPath string, layout []byte, sel uint16) {
		in, ok := decodeLoaderInput(appRP, xRP, llp, muslPath, layout, sel)
		if !ok {
			t.Skip()
		}
		checkLoaderDiff(t, in)
	})
}

// decodeLoaderInput makes one image from fuzz input. sel: bit 0 musl,
// bit 1 DT_RPATH builds, bit 2 LD_LIBRARY_PATH set, bit 3 a user, bit 4
// the program in /opt/bin behind /app, bit 5 musl's path file. Each layout
// byte puts libkilnx.so (or, when bit 3 of the byte... see below)
// somewhere: the high nibble picks the directory, the low three bits the
// kind, bit 3 makes it libkilny.so.
func decodeLoaderInput(appRP, xRP, llp, muslPath string, layout []byte, sel uint16) (loaderInput, bool) {
	in := loaderInput{libc: "glibc", rpath: sel&2 != 0, appRP: appRP, xRP: xRP}
	if sel&1 != 0 {
		in.libc = "musl"
	}
	// The run paths live in fixed-size placeholders, and a NUL would end
	// them early: such inputs say nothing new.
	if len(appRP) >= loaderPathLen || len(xRP) >= loaderPathLen || strings.ContainsRune(appRP+xRP+llp, 0) {
		return in, false
	}
	if sel&4 != 0 {
		in.llp = &llp
	}
	if sel&8 != 0 {
		in.uid = 65532
	}
	if sel&16 != 0 {
		in.appAt = "opt/bin/app"
	}
	if sel&32 != 0 && len(muslPath) < 4096 {
		in.muslPath = &muslPath
	}
	if len(layout) > 12 {
		layout = layout[:12]
	}
	for _, c := range layout {
		l := loaderLib{dir: loaderDirs[int(c>>4)%len(loaderDirs)], name: "libkilnx.so", kind: loaderKinds[int(c&7)%len(loaderKinds)]}
		if c&8 != 0 {
			l.name, l.kind = "libkilny.so", "copy"
		}
		in.libs = append(in.libs, l)
	}
	return in, true
}
