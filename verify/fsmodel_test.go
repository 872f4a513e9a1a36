package verify

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// FuzzFlattenModel decodes its input into a few layers of well-formed tar
// entries over a small alphabet of names (so whiteouts, opaque dirs,
// symlinks, hard links and "../" collide often), then checks Flatten
// against two independent oracles:
//
//   - refModel, a deliberately naive flat-map implementation of the same
//     layer semantics, for the resulting tree, metadata and contents;
//   - the kernel: the tree is materialized and every path is opened with
//     openat2(RESOLVE_IN_ROOT), whose symlink, ".." and loop handling is
//     what a chroot at the image root does, for Resolve and ReadFile.
func FuzzFlattenModel(f *testing.F) {
	f.Add([]byte("\x01\x00\x00\x03\x01\x02\x05\x00\x00\x01\x11\x04\x00"))
	f.Add([]byte("\x02\x03\x00\x01\x01\x03\x05\x05\x00\x00\x06\x03\x00\x01\x01\x01\x04\x02\x12\x00"))
	f.Add(bytes.Repeat([]byte{3, 1, 0, 1, 7, 2, 0, 9, 1, 1, 4, 6, 2, 0, 2, 1}, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		layers := decodeLayers(data)
		var raws [][]byte
		for _, l := range layers {
			raw, err := tarOf(l)
			if err != nil {
				t.Skip(err) // names tar.Writer will not encode
			}
			raws = append(raws, raw)
		}
		fsys, err := flattenRaw(raws...)
		if err != nil {
			t.Fatalf("flattening well-formed layers: %v", err)
		}
		ref := newRefModel()
		for _, l := range layers {
			ref.addLayer(l)
		}
		compareModel(t, fsys, ref)
		checkFS(t, fsys)
		checkAccounting(t, fsys)
		compareKernel(t, fsys, queries(layers, ref))
	})
}

// decodeLayers turns fuzz bytes into up to four layers of entries.
func decodeLayers(data []byte) [][]tarEnt {
	comps := []string{"a", "b", "lib", "..", ".", ".wh.a", ".wh.b", ".wh.lib", ".wh..wh..opq", ".wh..wh.plnk", ".wh.", "c"}
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return int(b)
	}
	name := func() string {
		n := 1 + next()%3
		parts := make([]string, n)
		for i := range parts {
			parts[i] = comps[next()%len(comps)]
		}
		prefix := []string{"", "./", "/"}[next()%3]
		return prefix + strings.Join(parts, "/")
	}
	target := func() string {
		switch next() % 4 {
		case 0:
			return "/" + strings.TrimPrefix(name(), "/")
		case 1:
			return ""
		}
		return strings.TrimPrefix(name(), "/")
	}
	layers := [][]tarEnt{nil}
	for len(data) > 0 {
		op := next()
		cur := &layers[len(layers)-1]
		switch op % 8 {
		case 0:
			if len(layers) < 4 {
				layers = append(layers, nil)
			}
		case 1:
			*cur = append(*cur, tarFile(name(), strings.Repeat(string(rune('A'+op%26)), op/8)))
		case 2:
			e := tarDir(name() + "/")
			e.mode = []int64{0o755, 0o700, 0o555}[op/8%3]
			e.uid = op / 64
			*cur = append(*cur, e)
		case 3:
			*cur = append(*cur, tarSymlink(name(), target()))
		case 4:
			*cur = append(*cur, tarHardlink(name(), target()))
		case 5:
			*cur = append(*cur, tarExe(name(), "x"))
		case 6:
			*cur = append(*cur, tarFile(path.Join(name(), ".wh."+comps[next()%4]), ""))
		case 7:
			*cur = append(*cur, tarFile(path.Join(name(), ".wh..wh..opq"), ""))
		}
	}
	return layers
}

// tarOf is tarBytes returning tar.Writer's refusals instead of failing.
func tarOf(entries []tarEnt) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// refModel is the layer semantics written as plainly as possible: a map
// from path to entry, subtrees found by prefix. Quadratic, and obviously
// so; the FS must agree with it.
type refModel struct {
	m     map[string]*refNode
	layer int
}

type refNode struct {
	Entry
	data     string
	layer    int
	explicit bool
}

func newRefModel() *refModel {
	return &refModel{m: map[string]*refNode{"/": {Entry: Entry{Path: "/", Type: TypeDir, Mode: 0o755}}}}
}

func under(q, p string) bool {
	return p == "/" || q == p || strings.HasPrefix(q, p+"/")
}

func (r *refModel) deleteTree(p string) {
	for q := range r.m {
		if q != "/" && under(q, p) {
			delete(r.m, q)
		}
	}
}

// ensure makes dir and its ancestors directories held by this layer.
func (r *refModel) ensure(dir string) {
	if dir == "/" {
		return
	}
	parts := strings.Split(dir[1:], "/")
	for i := range parts {
		a := "/" + strings.Join(parts[:i+1], "/")
		n := r.m[a]
		switch {
		case n == nil || n.Type != TypeDir:
			r.deleteTree(a)
			r.m[a] = &refNode{Entry: Entry{Path: a, Type: TypeDir, Mode: 0o755}, layer: r.layer}
		case n.layer < r.layer:
			n.layer, n.explicit = r.layer, false
		}
	}
}

func (r *refModel) addLayer(entries []tarEnt) {
	r.layer++
	for _, te := range entries {
		p := path.Clean("/" + te.name)
		dir, base := path.Dir(p), path.Base(p)
		if strings.Contains(dir, "/.wh.") {
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			r.whiteout(dir, base)
			continue
		}
		e := Entry{Path: p, Mode: fileMode(te.mode), UID: te.uid}
		data := ""
		switch te.typ {
		case tar.TypeReg:
			e.Type, e.Size, data = TypeFile, int64(len(te.body)), te.body
		case tar.TypeDir:
			e.Type = TypeDir
		case tar.TypeSymlink:
			e.Type, e.Linkname = TypeSymlink, te.link
		case tar.TypeLink:
			t := r.m[path.Clean("/"+te.link)]
			if t == nil || t.Type == TypeDir {
				continue
			}
			e, data = t.Entry, t.data
			e.Path = p
		}
		r.put(e, data)
	}
}

func (r *refModel) put(e Entry, data string) {
	if e.Path == "/" {
		if e.Type == TypeDir {
			root := r.m["/"]
			root.Mode, root.UID, root.GID = e.Mode, e.UID, e.GID
		}
		return
	}
	r.ensure(path.Dir(e.Path))
	old := r.m[e.Path]
	if old != nil && old.Type == TypeDir && e.Type == TypeDir {
		old.Mode, old.UID, old.GID = e.Mode, e.UID, e.GID
		old.layer, old.explicit = r.layer, true
		return
	}
	r.deleteTree(e.Path)
	r.m[e.Path] = &refNode{Entry: e, data: data, layer: r.layer, explicit: true}
}

func (r *refModel) whiteout(dir, base string) {
	name := base[len(".wh."):]
	opaque := base == ".wh..wh..opq"
	if !opaque && (strings.HasPrefix(base, ".wh..wh.") || name == "" || name == "." || name == "..") {
		return
	}
	r.ensure(dir)
	target := path.Join(dir, name)
	if opaque {
		target = dir
	}
	for q, n := range r.m {
		if q == "/" || !under(q, target) || (opaque && q == target) {
			continue
		}
		if n.layer < r.layer {
			delete(r.m, q)
		} else if n.Type == TypeDir && !n.explicit {
			n.Mode, n.UID, n.GID = 0o755, 0, 0
		}
	}
}

func compareModel(t *testing.T, fsys *FS, ref *refModel) {
	t.Helper()
	got := map[string]bool{}
	fsys.Walk(func(e *Entry) error {
		got[e.Path] = true
		r := ref.m[e.Path]
		if r == nil {
			t.Fatalf("FS has %s (%s), the model does not", e.Path, e.Type)
		}
		if e.Type != r.Type || e.Mode != r.Mode || e.UID != r.UID || e.GID != r.GID || e.Size != r.Size || e.Linkname != r.Linkname {
			t.Fatalf("%s: FS %+v, model %+v", e.Path, *e, r.Entry)
		}
		if e.Type == TypeFile {
			b, err := fsys.ReadFile(e.Path)
			// ReadFile follows nothing here: e.Path is a file, and its
			// parents are directories.
			if err != nil || string(b) != r.data {
				t.Fatalf("%s: FS content %q (%v), model %q", e.Path, b, err, r.data)
			}
		}
		return nil
	})
	for p := range ref.m {
		if !got[p] {
			t.Fatalf("model has %s, the FS does not", p)
		}
	}
}

// checkAccounting recomputes what MaxTotalSize is checked against.
func checkAccounting(t *testing.T, fsys *FS) {
	t.Helper()
	seen := map[*blob]bool{}
	var sum int64
	var walk func(n *node)
	walk = func(n *node) {
		if n.content != nil && !seen[n.content] {
			seen[n.content] = true
			sum += int64(len(n.content.data))
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(fsys.root)
	if sum != fsys.kept {
		t.Fatalf("kept = %d, live content = %d", fsys.kept, sum)
	}
}

// queries are the paths to resolve: every path in the image, every
// symlink target, with and without a trailing slash, and ".." walks.
func queries(layers [][]tarEnt, ref *refModel) []string {
	set := map[string]bool{"/": true, "/..": true, "a/../b": true}
	for p, n := range ref.m {
		set[p] = true
		set[p+"/"] = true
		set[p+"/.."] = true
		if n.Linkname != "" {
			set[n.Linkname] = true
			set[path.Join(path.Dir(p), n.Linkname)] = true
		}
	}
	for _, l := range layers {
		for _, e := range l {
			set[e.name] = true
		}
	}
	qs := make([]string, 0, len(set))
	for q := range set {
		if q != "" {
			qs = append(qs, q)
		}
	}
	sort.Strings(qs)
	return qs
}

// compareKernel materializes fsys and checks Resolve and ReadFile against
// the kernel resolving the same paths with RESOLVE_IN_ROOT.
func compareKernel(t *testing.T, fsys *FS, qs []string) {
	t.Helper()
	dir := t.TempDir()
	makeWritable(t, dir)
	if err := fsys.Materialize(dir); err != nil {
		t.Fatalf("Materialize: %v", err)
	}
	root, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, q := range qs {
		kpath, kdata, kerr := openInRoot(int(root.Fd()), dir, q)
		if errors.Is(kerr, syscall.ENOSYS) {
			t.Skip("openat2 not supported by this kernel")
		}
		got, e, err := fsys.Resolve(q)
		switch {
		case kerr == nil && err == nil:
			if got != kpath {
				t.Fatalf("Resolve(%q) = %s, kernel %s", q, got, kpath)
			}
			if e.Type == TypeFile {
				b, err := fsys.ReadFile(q)
				if err != nil || !bytes.Equal(b, kdata) {
					t.Fatalf("ReadFile(%q) = %q, %v; kernel read %q", q, b, err, kdata)
				}
			}
		case kerr != nil && err != nil:
			kloop := errors.Is(kerr, syscall.ELOOP)
			if loop := errors.Is(err, syscall.ELOOP); loop != kloop || (!loop && !errors.Is(err, fs.ErrNotExist)) {
				t.Fatalf("Resolve(%q): %v; kernel: %v", q, err, kerr)
			}
		default:
			t.Fatalf("Resolve(%q) = %q, %v; kernel: %q, %v", q, got, err, kpath, kerr)
		}
	}
}

// openInRoot opens name below dirfd as a chroot at dirfd would see it and
// returns the image path it reached and, for a file, its content.
func openInRoot(dirfd int, dir, name string) (string, []byte, error) {
	const (
		sysOpenat2    = 437 // the same number on every architecture
		resolveInRoot = 0x10
	)
	how := struct{ flags, mode, resolve uint64 }{
		flags:   uint64(syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_NONBLOCK),
		resolve: resolveInRoot,
	}
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return "", nil, err
	}
	var fd uintptr
	var errno syscall.Errno
	// With RESOLVE_IN_ROOT the kernel answers EAGAIN when a rename
	// anywhere on the system races with ".." resolution; openat2(2) says
	// to retry.
	for range 1000 {
		fd, _, errno = syscall.Syscall6(sysOpenat2, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		if errno != syscall.EAGAIN {
			break
		}
	}
	if errno != 0 {
		return "", nil, errno
	}
	f := os.NewFile(fd, name)
	defer f.Close()
	host, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", nil, err
	}
	rel, err := filepath.Rel(dir, host)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", nil, fmt.Errorf("kernel resolved %q outside the root: %s", name, host)
	}
	var data []byte
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if data, err = io.ReadAll(f); err != nil {
			return "", nil, err
		}
	}
	return path.Clean("/" + rel), data, nil
}
