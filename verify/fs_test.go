package verify

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tarEnt is one tar entry of a test layer.
type tarEnt struct {
	name string
	typ  byte
	mode int64
	uid  int
	body string
	link string
	size int64 // for TypeChar etc.; files use len(body)
}

func tarFile(name, body string) tarEnt {
	return tarEnt{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func tarExe(name, body string) tarEnt {
	return tarEnt{name: name, typ: tar.TypeReg, mode: 0o755, body: body}
}
func tarDir(name string) tarEnt { return tarEnt{name: name, typ: tar.TypeDir, mode: 0o755} }
func tarSymlink(name, target string) tarEnt {
	return tarEnt{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func tarHardlink(name, target string) tarEnt {
	return tarEnt{name: name, typ: tar.TypeLink, mode: 0o644, link: target}
}

// tarBytes writes the entries, in order, as an uncompressed tar.
func tarBytes(t testing.TB, entries ...tarEnt) []byte {
	t.Helper()
	b, err := tarOf(entries)
	if err != nil {
		t.Fatalf("writing the test tar: %v", err)
	}
	return b
}

func rawLayer(t testing.TB, raw []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	})
	if err != nil {
		t.Fatalf("making layer: %v", err)
	}
	return l
}

func tarLayer(t testing.TB, entries ...tarEnt) v1.Layer {
	t.Helper()
	return rawLayer(t, tarBytes(t, entries...))
}

func mustFlatten(t testing.TB, lim Limits, layers ...v1.Layer) *FS {
	t.Helper()
	f, err := FlattenLayers(layers, lim)
	if err != nil {
		t.Fatalf("FlattenLayers: %v", err)
	}
	return f
}

func walkPaths(t testing.TB, f *FS) []string {
	t.Helper()
	var ps []string
	if err := f.Walk(func(e *Entry) error {
		ps = append(ps, e.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ps
}

func wantContent(t *testing.T, f *FS, p, want string) {
	t.Helper()
	got, err := f.ReadFile(p)
	if err != nil {
		t.Fatalf("ReadFile(%s): %v", p, err)
	}
	if string(got) != want {
		t.Errorf("ReadFile(%s) = %q, want %q", p, got, want)
	}
}

func wantAbsent(t *testing.T, f *FS, ps ...string) {
	t.Helper()
	for _, p := range ps {
		if e, ok := f.Lstat(p); ok {
			t.Errorf("Lstat(%s) = %+v, want absent", p, e)
		}
	}
}

func wantType(t *testing.T, f *FS, p string, typ EntryType) *Entry {
	t.Helper()
	e, ok := f.Lstat(p)
	if !ok {
		t.Fatalf("Lstat(%s): absent, want a %s", p, typ)
	}
	if e.Type != typ {
		t.Fatalf("Lstat(%s).Type = %s, want %s", p, e.Type, typ)
	}
	return e
}

func TestFlattenLaterLayerWins(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarDir("etc/"), tarFile("etc/a", "one"), tarFile("etc/b", "b")),
		tarLayer(t, tarFile("etc/a", "two")),
	)
	wantContent(t, f, "/etc/a", "two")
	wantContent(t, f, "/etc/b", "b")
	if e := wantType(t, f, "/etc/a", TypeFile); e.Size != 3 || e.Mode != 0o644 {
		t.Errorf("/etc/a = %+v", e)
	}
}

func TestFlattenThroughImage(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image,
		tarLayer(t, tarFile("a", "lower")),
		tarLayer(t, tarFile("a", "upper")),
	)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Flatten(img, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	wantContent(t, f, "a", "upper")
}

func TestFlattenDirOverDirKeepsChildren(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarDir("d/"), tarFile("d/x", "x")),
		tarLayer(t, tarEnt{name: "d/", typ: tar.TypeDir, mode: 0o700, uid: 5}),
	)
	e := wantType(t, f, "/d", TypeDir)
	if e.Mode != 0o700 || e.UID != 5 {
		t.Errorf("/d = %+v, want mode 0700 uid 5", e)
	}
	wantContent(t, f, "/d/x", "x")
}

func TestFlattenFileReplacesDir(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarDir("d/"), tarDir("d/x/"), tarFile("d/x/y", "y"), tarFile("e", "e")),
		tarLayer(t, tarFile("d", "now a file")),
	)
	wantType(t, f, "/d", TypeFile)
	wantAbsent(t, f, "/d/x", "/d/x/y")
	for _, p := range walkPaths(t, f) {
		if strings.HasPrefix(p, "/d/") {
			t.Errorf("Walk still has %s", p)
		}
	}
	// And back: a directory replaces the file without resurrecting anything.
	f = mustFlatten(t, Limits{},
		tarLayer(t, tarFile("d/x/y", "y")),
		tarLayer(t, tarFile("d", "file")),
		tarLayer(t, tarDir("d/")),
	)
	wantType(t, f, "/d", TypeDir)
	wantAbsent(t, f, "/d/x")
}

func TestFlattenWhiteout(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarDir("a/"), tarDir("a/b/"), tarFile("a/b/c", "c"), tarFile("a/keep", "k"), tarFile("top", "t")),
		tarLayer(t, tarFile("a/.wh.b", ""), tarFile(".wh.top", ""), tarFile(".wh.nothing-there", "")),
	)
	wantAbsent(t, f, "/a/b", "/a/b/c", "/top", "/a/.wh.b", "/.wh.top", "/nothing-there")
	wantContent(t, f, "/a/keep", "k")
	for _, p := range walkPaths(t, f) {
		if strings.Contains(p, ".wh.") {
			t.Errorf("whiteout %s visible in Walk", p)
		}
	}
}

func TestFlattenWhiteoutThenSameLayerEntry(t *testing.T) {
	// A layer that whites out a lower directory and recreates it, whatever
	// the tar order, holds only its own children there.
	for _, order := range []string{"whiteout first", "whiteout last"} {
		t.Run(order, func(t *testing.T) {
			entries := []tarEnt{tarDir("foo/"), tarFile("foo/new", "n")}
			wh := tarFile(".wh.foo", "")
			if order == "whiteout first" {
				entries = append([]tarEnt{wh}, entries...)
			} else {
				entries = append(entries, wh)
			}
			f := mustFlatten(t, Limits{},
				tarLayer(t, tarDir("foo/"), tarFile("foo/old", "o")),
				tarLayer(t, entries...),
			)
			wantContent(t, f, "/foo/new", "n")
			wantAbsent(t, f, "/foo/old")
		})
	}
}

func TestFlattenWhiteoutAfterImpliedDir(t *testing.T) {
	// The layer holds foo only as the parent of foo/new: hiding the lower
	// foo also drops the lower foo's metadata.
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarEnt{name: "foo/", typ: tar.TypeDir, mode: 0o700, uid: 7}, tarFile("foo/old", "o")),
		tarLayer(t, tarFile("foo/new", "n"), tarFile(".wh.foo", "")),
	)
	wantContent(t, f, "/foo/new", "n")
	wantAbsent(t, f, "/foo/old")
	if e := wantType(t, f, "/foo", TypeDir); e.Mode != 0o755 || e.UID != 0 {
		t.Errorf("/foo = %+v, want default metadata", e)
	}
	// Without the whiteout, the lower directory's metadata stays.
	f = mustFlatten(t, Limits{},
		tarLayer(t, tarEnt{name: "foo/", typ: tar.TypeDir, mode: 0o700, uid: 7}, tarFile("foo/old", "o")),
		tarLayer(t, tarFile("foo/new", "n")),
	)
	if e := wantType(t, f, "/foo", TypeDir); e.Mode != 0o700 || e.UID != 7 {
		t.Errorf("/foo = %+v, want the lower metadata", e)
	}
	wantContent(t, f, "/foo/old", "o")
}

func TestFlattenRepeatedWhiteouts(t *testing.T) {
	// Each whiteout is a tar entry, and each node is visited once per
	// layer however many name it, so this stays linear.
	entries := []tarEnt{tarFile("d/keep", "k")}
	for i := 0; i < 2000; i++ {
		entries = append(entries, tarFile("d/.wh..wh..opq", ""), tarFile(".wh.d", ""))
	}
	f := mustFlatten(t, Limits{}, tarLayer(t, tarFile("d/old", "o")), tarLayer(t, entries...))
	wantContent(t, f, "/d/keep", "k")
	wantAbsent(t, f, "/d/old")
}

func TestFlattenOpaqueWhiteout(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarDir("d/"), tarFile("d/old", "o"), tarDir("d/sub/"), tarFile("d/sub/old2", "o2"), tarFile("other", "x")),
		tarLayer(t,
			tarFile("d/before", "b"), // same layer, before the marker in tar order
			tarFile("d/.wh..wh..opq", ""),
			tarDir("d/sub/"),
			tarFile("d/sub/after", "a"), // same layer, after it
		),
	)
	wantAbsent(t, f, "/d/old", "/d/sub/old2", "/d/.wh..wh..opq")
	wantContent(t, f, "/d/before", "b")
	wantContent(t, f, "/d/sub/after", "a")
	wantContent(t, f, "/other", "x")
}

func TestFlattenNestedOpaque(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarFile("d/x", "x"), tarFile("d/e/y", "y")),
		tarLayer(t, tarFile("d/e/.wh..wh..opq", ""), tarFile("d/.wh..wh..opq", "")),
	)
	wantAbsent(t, f, "/d/x", "/d/e/y")
	// The upper layer has d/e (the marker lives in it), so it stays, empty.
	wantType(t, f, "/d/e", TypeDir)
}

func TestFlattenAUFSMetadataIgnored(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarFile("a", "a")),
		tarLayer(t, tarFile(".wh..wh.plnk/123.4", "x"), tarDir(".wh..wh.aufs"), tarFile(".wh.", ""), tarFile(".wh..", "")),
	)
	wantContent(t, f, "/a", "a")
	for _, p := range walkPaths(t, f) {
		if strings.Contains(p, ".wh.") {
			t.Errorf("%s visible", p)
		}
	}
}

func TestFlattenHardLinks(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarExe("bin/busybox", "bb")),
		tarLayer(t,
			tarHardlink("bin/sh", "bin/busybox"),
			tarHardlink("./bin/ls", "/bin/busybox"),
			tarHardlink("bin/cat", "../../bin/busybox"),
			tarHardlink("bin/missing", "bin/nope"),
			tarHardlink("bin/dirlink", "bin"),
			tarSymlink("bin/sym", "busybox"),
			tarHardlink("bin/symlink-link", "bin/sym"),
		),
	)
	for _, p := range []string{"/bin/sh", "/bin/ls", "/bin/cat"} {
		wantContent(t, f, p, "bb")
		if e := wantType(t, f, p, TypeFile); e.Mode != 0o755 || e.Size != 2 {
			t.Errorf("%s = %+v, want the target's mode and size", p, e)
		}
	}
	wantAbsent(t, f, "/bin/missing", "/bin/dirlink")
	if e := wantType(t, f, "/bin/symlink-link", TypeSymlink); e.Linkname != "busybox" {
		t.Errorf("hard link to a symlink = %+v", e)
	}
}

func TestFlattenHardLinkSeesTargetAtThatPoint(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarFile("a", "old")),
		tarLayer(t, tarHardlink("b", "a"), tarFile("a", "new")),
	)
	wantContent(t, f, "/b", "old")
	wantContent(t, f, "/a", "new")
}

func TestFlattenNames(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t,
			tarFile("../../etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
			tarFile("./usr/../../x", "x"),
			tarFile("/abs/y", "y"),
			tarFile("usr/bin/implied", "i"),
		),
	)
	wantContent(t, f, "/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
	wantContent(t, f, "/x", "x")
	wantContent(t, f, "/abs/y", "y")
	for _, p := range []string{"/usr", "/usr/bin", "/etc", "/abs"} {
		if e := wantType(t, f, p, TypeDir); e.Mode != 0o755 || e.UID != 0 {
			t.Errorf("implied %s = %+v", p, e)
		}
	}
	want := []string{"/", "/abs", "/abs/y", "/etc", "/etc/passwd", "/usr", "/usr/bin", "/usr/bin/implied", "/x"}
	if got := walkPaths(t, f); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Walk = %v, want %v", got, want)
	}
	if _, ok := f.Lstat("../../etc/passwd"); !ok {
		t.Error("Lstat does not clean its argument")
	}
}

func TestFlattenRootMetadata(t *testing.T) {
	f := mustFlatten(t, Limits{}, tarLayer(t, tarEnt{name: "./", typ: tar.TypeDir, mode: 0o700, uid: 3}, tarFile(".", "ignored")))
	if e := wantType(t, f, "/", TypeDir); e.Mode != 0o700 || e.UID != 3 {
		t.Errorf("root = %+v", e)
	}
}

func TestFlattenImpliedDirReplacesLowerSymlink(t *testing.T) {
	// Overlay keeps a layer's own directories: etc/passwd in the upper
	// layer makes etc a directory there, hiding the lower symlink.
	f := mustFlatten(t, Limits{},
		tarLayer(t, tarSymlink("etc", "/host"), tarDir("host/"), tarFile("host/keep", "k")),
		tarLayer(t, tarFile("etc/passwd", "p")),
	)
	wantType(t, f, "/etc", TypeDir)
	wantContent(t, f, "/etc/passwd", "p")
	wantAbsent(t, f, "/host/passwd")
	wantContent(t, f, "/host/keep", "k")
}

func TestFlattenDevicesAndFifos(t *testing.T) {
	f := mustFlatten(t, Limits{}, tarLayer(t,
		tarEnt{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		tarEnt{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660},
		tarEnt{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
	))
	for _, p := range []string{"/dev/null", "/dev/sda", "/run/fifo"} {
		wantType(t, f, p, TypeOther)
		if _, err := f.ReadFile(p); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadFile(%s) = %v, want not a regular file", p, err)
		}
	}
}

func TestFlattenModes(t *testing.T) {
	f := mustFlatten(t, Limits{}, tarLayer(t,
		tarEnt{name: "usr/bin/su", typ: tar.TypeReg, mode: 0o4755},
		tarEnt{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		tarEnt{name: "usr/bin/wall", typ: tar.TypeReg, mode: 0o2755},
	))
	for p, want := range map[string]fs.FileMode{
		"/usr/bin/su":   0o755 | fs.ModeSetuid,
		"/tmp":          0o777 | fs.ModeSticky,
		"/usr/bin/wall": 0o755 | fs.ModeSetgid,
	} {
		if e, _ := f.Lstat(p); e == nil || e.Mode != want {
			t.Errorf("Lstat(%s) = %+v, want mode %v", p, e, want)
		}
	}
}

func TestResolve(t *testing.T) {
	// Debian 12's merged /usr with the x86-64 loader.
	f := mustFlatten(t, Limits{}, tarLayer(t,
		tarSymlink("lib", "usr/lib"),
		tarSymlink("lib64", "usr/lib64"),
		tarDir("usr/lib/x86_64-linux-gnu/"),
		tarExe("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "loader"),
		tarSymlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		tarFile("etc/passwd", "image passwd"),
		tarSymlink("x", "../../../../etc/passwd"),
		tarSymlink("usr/lib/x86_64-linux-gnu/up", "../../../../../../etc"),
		tarSymlink("dangling", "/nope"),
		tarSymlink("a", "b"),
		tarSymlink("b", "a"),
		tarSymlink("self", "self"),
		tarSymlink("empty", ""),
		tarSymlink("dotdot-through-link", "lib/../etc/passwd"),
		tarFile("plain", "p"),
	))
	for _, tc := range []struct{ in, want string }{
		{"/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{"lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{"/x", "/etc/passwd"},
		{"/lib/x86_64-linux-gnu/up/passwd", "/etc/passwd"},
		{"/../../etc/./passwd", "/etc/passwd"},
		{"/lib", "/usr/lib"},
		{"/", "/"},
		// lib is /usr/lib, so lib/.. is /usr, where etc does not exist.
		{"/lib/../lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"},
	} {
		got, e, err := f.Resolve(tc.in)
		if err != nil || got != tc.want || e.Path != tc.want {
			t.Errorf("Resolve(%s) = %q, %v, %v; want %q", tc.in, got, e, err, tc.want)
		}
	}
	wantContent(t, f, "/x", "image passwd")
	wantContent(t, f, "/lib64/ld-linux-x86-64.so.2", "loader")

	for _, p := range []string{"/dangling", "/nope", "/plain/x", "/plain/..", "/empty", "/dotdot-through-link"} {
		_, _, err := f.Resolve(p)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Resolve(%s) = %v, want fs.ErrNotExist", p, err)
		}
		if _, err := f.ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s) = %v, want fs.ErrNotExist", p, err)
		}
	}
	for _, p := range []string{"/a", "/self", "/a/x"} {
		_, _, err := f.Resolve(p)
		if err == nil || !strings.Contains(err.Error(), "loop") || !errors.Is(err, syscall.ELOOP) {
			t.Errorf("Resolve(%s) = %v, want a loop error", p, err)
		}
	}
	if _, err := f.ReadFile("/usr"); err == nil {
		t.Error("ReadFile of a directory succeeded")
	}
}

func TestResolveHopLimit(t *testing.T) {
	// l0 -> l1 -> ... -> l40 -> target: 40 links resolve, 41 do not.
	var entries []tarEnt
	for i := 0; i < 41; i++ {
		entries = append(entries, tarSymlink(fmt.Sprintf("l%d", i), fmt.Sprintf("l%d", i+1)))
	}
	entries = append(entries, tarFile("l41", "end"))
	f := mustFlatten(t, Limits{}, tarLayer(t, entries...))
	if p, _, err := f.Resolve("/l1"); err != nil || p != "/l41" {
		t.Errorf("Resolve(/l1) after 40 links = %q, %v", p, err)
	}
	if _, _, err := f.Resolve("/l0"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Resolve(/l0) after 41 links = %v, want ELOOP", err)
	}
}

func TestFlattenEntryLimit(t *testing.T) {
	var entries []tarEnt
	for i := 0; i < 11; i++ {
		entries = append(entries, tarFile(fmt.Sprintf("f%d", i), ""))
	}
	_, err := FlattenLayers([]v1.Layer{tarLayer(t, entries...)}, Limits{MaxEntries: 10})
	if err == nil || !strings.Contains(err.Error(), "more than 10 entries") || !strings.Contains(err.Error(), "reading layer 1 (sha256:") {
		t.Errorf("err = %v, want more than 10 entries in layer 1", err)
	}
	// Implied parents count too, so a deep name cannot multiply nodes.
	deep := strings.Repeat("d/", 2000) + "f"
	_, err = FlattenLayers([]v1.Layer{tarLayer(t, tarFile(deep, ""))}, Limits{MaxEntries: 100})
	if err == nil || !strings.Contains(err.Error(), "more than 100 entries") {
		t.Errorf("deep name: err = %v, want more than 100 entries", err)
	}
}

func TestFlattenOversizeFile(t *testing.T) {
	f := mustFlatten(t, Limits{MaxFileSize: 10}, tarLayer(t, tarFile("big", "0123456789A"), tarFile("ok", "0123456789"), tarHardlink("big2", "big")))
	for _, p := range []string{"/big", "/big2"} {
		if e := wantType(t, f, p, TypeFile); e.Size != 11 {
			t.Errorf("%s size = %d", p, e.Size)
		}
		if _, err := f.ReadFile(p); err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("ReadFile(%s) = %v, want too large", p, err)
		}
	}
	wantContent(t, f, "/ok", "0123456789")
	if err := f.Materialize(t.TempDir()); err == nil || !strings.Contains(err.Error(), "content not kept") {
		t.Errorf("Materialize = %v, want content not kept", err)
	}
}

func TestFlattenTotalSize(t *testing.T) {
	lim := Limits{MaxTotalSize: 10}
	if _, err := FlattenLayers([]v1.Layer{tarLayer(t, tarFile("a", "123456"), tarFile("b", "123456"))}, lim); err == nil || !strings.Contains(err.Error(), "MaxTotalSize") {
		t.Errorf("err = %v, want MaxTotalSize", err)
	}
	// Replaced and whited-out content stops counting.
	mustFlatten(t, lim,
		tarLayer(t, tarFile("a", "123456")),
		tarLayer(t, tarFile(".wh.a", ""), tarFile("b", "123456")),
		tarLayer(t, tarFile("b", "1234"), tarFile("c", "12345")),
	)
}

// header is a hand-made ustar header block, for headers tar.Writer
// refuses to write.
func rawHeader(name string, typ byte, size []byte) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:136], size)
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord formats one PAX record: "<len> <key>=<value>\n", where len
// counts itself.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + len(fmt.Sprint(len(rec)))
	if len(fmt.Sprint(n)) > len(fmt.Sprint(len(rec))) {
		n++ // adding the length made it one digit longer
	}
	return fmt.Sprint(n) + rec
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func TestFlattenMalformedTars(t *testing.T) {
	negative := append([]byte{0xff}, bytes.Repeat([]byte{0xff}, 11)...) // base-256 -1
	huge := fmt.Appendf(nil, "%011o\x00", int64(1)<<33-1)               // 8 GiB claimed, nothing there
	longName := tarBytes(t, tarFile(strings.Repeat("a/", 2100)+"f", "x"))

	// A PAX sparse file of 1 TiB holding 512 real bytes.
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", "big") + paxRecord("GNU.sparse.realsize", "1099511627776")
	sparse := append(rawHeader("PaxHeaders/big", 'x', fmt.Appendf(nil, "%011o\x00", len(pax))), padBlock([]byte(pax))...)
	sparse = append(sparse, rawHeader("big", '0', fmt.Appendf(nil, "%011o\x00", 1024))...)
	sparse = append(sparse, padBlock([]byte("1\n1099511627264\n512\n"))...)
	sparse = append(sparse, bytes.Repeat([]byte("D"), 512)...)
	sparse = append(sparse, make([]byte, 1024)...)

	for _, tc := range []struct {
		name    string
		raw     []byte
		wantErr bool
	}{
		{"negative size", append(rawHeader("neg", '0', negative), make([]byte, 1024)...), true},
		{"size beyond the stream", append(rawHeader("huge", '0', huge), make([]byte, 1024)...), false}, // over MaxFileSize: recorded, skipped
		{"truncated content", append(rawHeader("t", '0', fmt.Appendf(nil, "%011o\x00", 4096)), make([]byte, 512)...), true},
		{"garbage", bytes.Repeat([]byte("garbage!"), 200), true},
		{"name over 4096 bytes", longName, true},
		{"huge sparse file", sparse, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := FlattenLayers([]v1.Layer{rawLayer(t, tc.raw)}, Limits{})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "reading layer 1 (") {
					t.Errorf("err = %v, want an error naming layer 1", err)
				}
				return
			}
			if err != nil {
				// Refusing is fine too, as long as it is an error.
				t.Logf("refused: %v", err)
				return
			}
			walkPaths(t, f)
		})
	}

	// The sparse file is recorded with its logical size, content not kept.
	f, err := FlattenLayers([]v1.Layer{rawLayer(t, sparse)}, Limits{})
	if err != nil {
		t.Fatalf("sparse: %v", err)
	}
	if e := wantType(t, f, "/big", TypeFile); e.Size != 1<<40 {
		t.Errorf("sparse size = %d", e.Size)
	}
}

func TestWalkSkip(t *testing.T) {
	f := mustFlatten(t, Limits{}, tarLayer(t, tarFile("a/1", ""), tarFile("a/2", ""), tarFile("b/1", ""), tarFile("b/2", ""), tarFile("c", "")))
	var got []string
	err := f.Walk(func(e *Entry) error {
		got = append(got, e.Path)
		switch e.Path {
		case "/a":
			return fs.SkipDir
		case "/b/1":
			return fs.SkipDir // a file: skip the rest of /b
		case "/c":
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/ /a /b /b/1 /c"; strings.Join(got, " ") != want {
		t.Errorf("walked %v, want %s", got, want)
	}
	sentinel := errors.New("stop")
	if err := f.Walk(func(*Entry) error { return sentinel }); err != sentinel {
		t.Errorf("Walk error = %v", err)
	}
}

func TestEntriesAreCopies(t *testing.T) {
	f := mustFlatten(t, Limits{}, tarLayer(t, tarFile("a", "abc")))
	e, _ := f.Lstat("/a")
	e.Mode = 0
	b, _ := f.ReadFile("/a")
	b[0] = 'X'
	if e2, _ := f.Lstat("/a"); e2.Mode != 0o644 {
		t.Error("Lstat hands out the FS's own entry")
	}
	wantContent(t, f, "/a", "abc")
}

// makeWritable undoes Materialize's modes so t.TempDir can clean up when
// the tests do not run as root.
func makeWritable(t testing.TB, dir string) {
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}

func TestMaterialize(t *testing.T) {
	f := mustFlatten(t, Limits{},
		tarLayer(t,
			tarEnt{name: "usr/", typ: tar.TypeDir, mode: 0o555},
			tarEnt{name: "usr/bin/", typ: tar.TypeDir, mode: 0o555},
			tarExe("usr/bin/app", "#!app"),
			tarEnt{name: "usr/bin/su", typ: tar.TypeReg, mode: 0o4755, body: "su"},
			tarEnt{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
			tarFile("etc/passwd", "root"),
			tarSymlink("bin", "usr/bin"),
			tarSymlink("etc/abs", "/etc/passwd"),
			tarHardlink("usr/bin/app2", "usr/bin/app"),
			tarEnt{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
			tarEnt{name: "secret", typ: tar.TypeReg, mode: 0o000, body: "s"},
		),
	)
	dir := t.TempDir()
	makeWritable(t, dir)
	if err := f.Materialize(dir); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]fs.FileMode{
		"usr":          fs.ModeDir | 0o555,
		"usr/bin":      fs.ModeDir | 0o555,
		"usr/bin/app":  0o755,
		"usr/bin/app2": 0o755,
		"usr/bin/su":   0o755, // setuid dropped
		"tmp":          fs.ModeDir | fs.ModeSticky | 0o777,
		"etc/passwd":   0o644,
		"secret":       0,
		"bin":          fs.ModeSymlink | 0o777,
	} {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", rel, fi.Mode(), want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "usr/bin/app2")); err != nil || string(b) != "#!app" {
		t.Errorf("hard link content = %q, %v", b, err)
	}
	// One inode, as in the image: copies would let links to one large
	// file multiply what MaxTotalSize bounds.
	fi1, err1 := os.Stat(filepath.Join(dir, "usr/bin/app"))
	fi2, err2 := os.Stat(filepath.Join(dir, "usr/bin/app2"))
	if err1 != nil || err2 != nil || !os.SameFile(fi1, fi2) {
		t.Errorf("usr/bin/app2 is not a hard link of usr/bin/app (%v, %v)", err1, err2)
	}
	if l, err := os.Readlink(filepath.Join(dir, "etc/abs")); err != nil || l != "/etc/passwd" {
		t.Errorf("symlink target = %q, %v; want it unchanged", l, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "dev/null")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("device materialized: %v", err)
	}
}

func TestMaterializeMaliciousImage(t *testing.T) {
	dir, sentinel := rootAndSentinel(t)
	f := mustFlatten(t, Limits{},
		tarLayer(t,
			tarSymlink("etc", sentinel), // absolute host path
			tarSymlink("up", "../.."),
			tarSymlink("abs", sentinel),
			tarSymlink("keep", sentinel),
			tarSymlink("rel", "../sentinel"),
		),
		tarLayer(t,
			tarFile("etc/passwd", "evil"),
			tarFile("../../sentinel/dotdot", "evil"),
			tarFile("up/escape", "evil"),
			tarFile(filepath.Join(sentinel, "abs-name"), "evil"),
			tarHardlink("../../../linked", "etc/passwd"),
			tarFile("abs/through", "evil"),
		),
		tarLayer(t, tarFile("rel/x", "evil"), tarSymlink("late", sentinel)),
	)
	if err := f.Materialize(dir); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(sentinel); err != nil || len(ents) != 0 {
		t.Fatalf("sentinel next to dir holds %v (%v): Materialize wrote outside dir", ents, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 2 {
		t.Errorf("parent holds %v, want only root and sentinel", ents)
	}
	for _, rel := range []string{"etc/passwd", "sentinel/dotdot", "up/escape", "linked", "abs/through", "rel/x", strings.TrimPrefix(filepath.Join(sentinel, "abs-name"), "/")} {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || string(b) != "evil" {
			t.Errorf("%s inside dir = %q, %v", rel, b, err)
		}
	}
	for _, rel := range []string{"keep", "late"} {
		if l, err := os.Readlink(filepath.Join(dir, rel)); err != nil || l != sentinel {
			t.Errorf("%s = %q, %v; want the symlink kept as written", rel, l, err)
		}
	}
}

func TestMaterializeRefusesNonEmptyTarget(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := mustFlatten(t, Limits{}, tarLayer(t, tarFile("a", "image")))
	if err := f.Materialize(dir); err == nil {
		t.Error("Materialize overwrote an existing file")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "host" {
		t.Errorf("existing file now %q", b)
	}
}

// BenchmarkFlatten flattens a ~20 MB image: a base of 4,000 small files
// with symlinks, a layer with one 12 MiB file, and a layer that rewrites
// and whites out part of the base.
func BenchmarkFlatten(b *testing.B) {
	small := strings.Repeat("x", 1000)
	var base []tarEnt
	for d := 0; d < 40; d++ {
		base = append(base, tarDir(fmt.Sprintf("usr/share/d%02d/", d)))
		for i := 0; i < 100; i++ {
			base = append(base, tarFile(fmt.Sprintf("usr/share/d%02d/f%03d", d, i), small))
		}
		base = append(base, tarSymlink(fmt.Sprintf("usr/lib/l%02d", d), fmt.Sprintf("../share/d%02d", d)))
	}
	var upper []tarEnt
	for d := 0; d < 40; d += 4 {
		upper = append(upper, tarFile(fmt.Sprintf("usr/share/d%02d/.wh.f000", d), ""))
		for i := 1; i < 100; i += 2 {
			upper = append(upper, tarFile(fmt.Sprintf("usr/share/d%02d/f%03d", d, i), small))
		}
	}
	upper = append(upper, tarFile("usr/share/d39/.wh..wh..opq", ""))
	raws := [][]byte{
		tarBytes(b, base...),
		tarBytes(b, tarExe("app/server", strings.Repeat("\x7fELF", 3<<20))),
		tarBytes(b, upper...),
	}
	for _, compress := range []bool{false, true} {
		var layers []v1.Layer
		var total int64
		for _, raw := range raws {
			total += int64(len(raw))
			if compress {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write(raw)
				zw.Close()
				raw = buf.Bytes()
			}
			layers = append(layers, rawLayer(b, raw))
		}
		b.Run(map[bool]string{false: "uncompressed", true: "gzip"}[compress], func(b *testing.B) {
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FlattenLayers(layers, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// rootAndSentinel makes an empty directory to materialize into and a
// sentinel directory beside it that must stay empty.
func rootAndSentinel(t testing.TB) (dir, sentinel string) {
	t.Helper()
	parent := t.TempDir()
	dir, sentinel = filepath.Join(parent, "root"), filepath.Join(parent, "sentinel")
	for _, d := range []string{dir, sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeWritable(t, parent)
	return dir, sentinel
}

// A base flattened once and cloned per image must give each image exactly
// what flattening all of its layers gives, and stay as it was.
func TestCloneThenAddLayerEqualsFlatten(t *testing.T) {
	base := []v1.Layer{
		tarLayer(t, tarDir("etc"), tarFile("etc/passwd", "root"), tarExe("bin/busybox", "bb"), tarHardlink("bin/sh", "bin/busybox"), tarFile("etc/old", "x")),
		tarLayer(t, tarFile("etc/hosts", "h")),
	}
	top := tarLayer(t, tarFile("etc/passwd", "root\nnonroot"), tarFile("etc/.wh.old", ""), tarFile("bin/.wh.busybox", ""), tarExe("app", "elf"))
	b := mustFlatten(t, Limits{}, base...)
	before := walkPaths(t, b)

	c := b.Clone()
	if err := c.AddLayer(top); err != nil {
		t.Fatal(err)
	}
	want := mustFlatten(t, Limits{}, append(base, top)...)
	if got, w := walkPaths(t, c), walkPaths(t, want); !slices.Equal(got, w) {
		t.Errorf("clone + layer = %v\nflatten     = %v", got, w)
	}
	if c.kept != want.kept || c.count != want.count || c.layer != want.layer {
		t.Errorf("clone accounting kept/count/layer = %d/%d/%d, flatten %d/%d/%d", c.kept, c.count, c.layer, want.kept, want.count, want.layer)
	}
	wantContent(t, c, "/etc/passwd", "root\nnonroot")
	wantContent(t, c, "/bin/sh", "bb") // the hard link outlives the removed target
	wantAbsent(t, c, "/etc/old", "/bin/busybox")

	if got := walkPaths(t, b); !slices.Equal(got, before) {
		t.Errorf("the base changed: %v, was %v", got, before)
	}
	wantContent(t, b, "/etc/passwd", "root")
	wantContent(t, b, "/bin/busybox", "bb")
	wantAbsent(t, b, "/app")
}
