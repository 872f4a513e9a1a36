package verify

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func FuzzReadELF(f *testing.F) {
	seeds := map[string]int{ // file -> bytes to seed with (0: all)
		"/usr/bin/true":                        0,
		"/lib/x86_64-linux-gnu/libdl.so.2":     0,
		"/lib/x86_64-linux-gnu/libc.so.6":      8 << 10,
		"/lib/x86_64-linux-gnu/libm.so.6":      8 << 10,
		"/lib/ld-musl-x86_64.so.1":             8 << 10,
		"/usr/lib/x86_64-linux-musl/libc.so":   8 << 10,
		"/usr/aarch64-linux-gnu/lib/libc.so.6": 8 << 10,
	}
	if gobin, err := exec.LookPath("go"); err == nil {
		seeds[gobin] = 8 << 10
	}
	for p, n := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if n > 0 && n < len(b) {
			b = b[:n]
		}
		f.Add(b)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := readELF(data) // no recover: a panic here is kiln's bug
		if err != nil {
			if !strings.HasPrefix(err.Error(), "malformed ELF") {
				t.Fatalf("error without the malformed ELF prefix: %v", err)
			}
			return
		}
		if e.Static != (e.Interp == "" && len(e.Needed) == 0) {
			t.Fatalf("Static=%v with Interp=%q Needed=%v", e.Static, e.Interp, e.Needed)
		}
		if len(e.Interp) > maxELFString || strings.IndexByte(e.Interp, 0) >= 0 {
			t.Fatalf("bad Interp %q", e.Interp)
		}
		for _, vs := range e.VersionNeeds {
			if len(vs) == 0 {
				t.Fatal("empty version list in VersionNeeds")
			}
		}
	})
}

// fuzzLimits keep each fuzz input cheap while still reaching every limit.
func fuzzLimits() Limits {
	return Limits{MaxEntries: 2000, MaxFileSize: 64 << 10, MaxTotalSize: 256 << 10}
}

func addTarSeeds(f *testing.F) {
	lower := tarBytes(f,
		tarDir("etc/"), tarFile("etc/passwd", "root:x:0:0::/:/bin/sh\n"),
		tarSymlink("lib", "usr/lib"), tarSymlink("lib64", "/usr/lib64"),
		tarExe("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "ld"),
		tarSymlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		tarDir("d/"), tarFile("d/old", "o"), tarExe("bin/busybox", "bb"),
		tarSymlink("loop", "loop"), tarSymlink("esc", "../../../../etc/passwd"),
		tarEnt{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		tarEnt{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		tarEnt{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
	upper := tarBytes(f,
		tarFile("d/new", "n"), tarFile("d/.wh..wh..opq", ""), tarFile("etc/.wh.passwd", ""),
		tarHardlink("bin/sh", "bin/busybox"), tarHardlink("bin/x", "../../bin/busybox"),
		tarFile("../../etc/shadow", "s"), tarSymlink("etc2", "/host"), tarFile("etc2/x", "x"),
		tarFile(".wh..wh.plnk/1", ""), tarEnt{name: "usr/bin/su", typ: tar.TypeReg, mode: 0o4755, body: "su"},
	)
	f.Add(lower, upper)
	f.Add(upper, lower)
	f.Add(lower, []byte{})
	f.Add([]byte{}, tarBytes(f, tarSymlink("a", "b"), tarSymlink("b", "a"), tarFile("c/d/e", "x"), tarFile("c", "y")))
}

// flattenRaw applies uncompressed tars as layers, the way FlattenLayers
// applies each layer's Uncompressed stream. It skips v1.Layer, whose
// tarball implementation gzips every input to compute its digest, which
// would leave the fuzzer measuring compress/flate.
func flattenRaw(layers ...[]byte) (*FS, error) {
	fsys := newFS(fuzzLimits())
	for _, raw := range layers {
		fsys.layer++
		if err := fsys.readLayer(bytes.NewReader(raw)); err != nil {
			return nil, err
		}
	}
	return fsys, nil
}

func FuzzFlatten(f *testing.F) {
	addTarSeeds(f)
	f.Fuzz(func(t *testing.T, lower, upper []byte) {
		fsys, err := flattenRaw(lower, upper)
		if err != nil {
			return
		}
		checkFS(t, fsys)
	})
}

// checkFS asserts what every flattened image must satisfy.
func checkFS(t *testing.T, fsys *FS) {
	t.Helper()
	count := 0
	err := fsys.Walk(func(e *Entry) error {
		count++
		if e.Path != path.Clean(e.Path) || !strings.HasPrefix(e.Path, "/") {
			t.Fatalf("unclean path %q", e.Path)
		}
		if strings.Contains(e.Path, "/"+whiteoutPrefix) {
			t.Fatalf("whiteout visible: %q", e.Path)
		}
		if e.Path != "/" {
			p, ok := fsys.Lstat(path.Dir(e.Path))
			if !ok || p.Type != TypeDir {
				t.Fatalf("%s: parent is %+v", e.Path, p)
			}
		}
		if l, ok := fsys.Lstat(e.Path); !ok || l.Type != e.Type {
			t.Fatalf("Lstat(%s) = %+v, Walk gave %+v", e.Path, l, e)
		}
		if e.Type == TypeFile {
			b, err := fsys.ReadFile(e.Path)
			if err == nil && int64(len(b)) != e.Size {
				t.Fatalf("%s: %d bytes, Size %d", e.Path, len(b), e.Size)
			}
			if err != nil && e.Size <= fuzzLimits().MaxFileSize {
				t.Fatalf("ReadFile(%s): %v", e.Path, err)
			}
		}
		got, r, err := fsys.Resolve(e.Path)
		switch {
		case err == nil:
			if r.Type == TypeSymlink || got != r.Path {
				t.Fatalf("Resolve(%s) = %q, %+v", e.Path, got, r)
			}
			if l, ok := fsys.Lstat(got); !ok || l.Type != r.Type {
				t.Fatalf("Resolve(%s) = %q, which Lstat does not find", e.Path, got)
			}
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ELOOP):
		default:
			t.Fatalf("Resolve(%s): unexpected error %v", e.Path, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count > fuzzLimits().MaxEntries+1 {
		t.Fatalf("%d entries, limit %d", count, fuzzLimits().MaxEntries)
	}
}

func FuzzMaterialize(f *testing.F) {
	addTarSeeds(f)
	f.Fuzz(func(t *testing.T, lower, upper []byte) {
		fsys, err := flattenRaw(lower, upper)
		if err != nil {
			return
		}
		dir, sentinel := rootAndSentinel(t)
		merr := fsys.Materialize(dir)
		if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
			t.Fatalf("wrote outside dir: %v", ents)
		}
		if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 2 {
			t.Fatalf("wrote next to dir: %v", ents)
		}
		if merr != nil {
			return // e.g. a file over MaxFileSize
		}
		// What is on disk is exactly the image, devices and fifos aside.
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			e, ok := fsys.Lstat(rel)
			if !ok {
				t.Fatalf("%s on disk, not in the image", rel)
			}
			want := map[EntryType]fs.FileMode{TypeDir: fs.ModeDir, TypeFile: 0, TypeSymlink: fs.ModeSymlink}[e.Type]
			if d.Type() != want {
				t.Fatalf("%s: on disk %v, image %s", rel, d.Type(), e.Type)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
