package verify

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Limits bounds what Flatten holds in memory, because layers come from
// images nobody vetted. A zero (or negative) field means its default.
type Limits struct {
	MaxEntries   int   // total tar entries over all layers, implied parent directories included; default 200_000
	MaxFileSize  int64 // largest regular file kept in memory; default 512 MiB
	MaxTotalSize int64 // sum of kept file contents; default 2 GiB
}

const (
	defaultMaxEntries   = 200_000
	defaultMaxFileSize  = 512 << 20
	defaultMaxTotalSize = 2 << 30

	// maxNameLen is Linux's PATH_MAX: no runtime could create a longer
	// name, so an entry that has one is malformed, not merely unusual.
	maxNameLen = 4096
	// maxSymlinkHops is Linux's limit (MAXSYMLINKS) on the links followed
	// while resolving one path; beyond it the kernel says ELOOP.
	maxSymlinkHops = 40

	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = defaultMaxEntries
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = defaultMaxFileSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = defaultMaxTotalSize
	}
	return l
}

// EntryType is the kind of a path in the flattened image.
type EntryType int

// Entry types. TypeOther covers devices and fifos: they are recorded so
// checks can see them, but never read or materialized.
const (
	TypeFile EntryType = iota + 1
	TypeDir
	TypeSymlink
	TypeOther
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeOther:
		return "other"
	}
	return fmt.Sprintf("EntryType(%d)", int(t))
}

// Entry is one path of the flattened image. Entries handed out by FS are
// copies: changing one does not change the image.
type Entry struct {
	Path     string // clean, absolute, e.g. "/lib/x86_64-linux-gnu/libc.so.6"
	Type     EntryType
	Mode     fs.FileMode // permission bits + setuid, setgid, sticky; no type bits
	UID, GID int
	Size     int64
	Linkname string // symlink target as written (may be absolute or relative)

	// content is nil for everything but regular files, and for regular
	// files over Limits.MaxFileSize; hard links share their target's.
	content *blob
}

// blob is file content shared by hard links, counted once against
// Limits.MaxTotalSize while anything refers to it.
type blob struct {
	data []byte
	refs int
}

// node is an Entry placed in the tree. Only directories have children, so
// no entry ever has a symlink or a file as an ancestor: that is what keeps
// Materialize inside its directory without any resolution on the host.
type node struct {
	Entry
	children map[string]*node

	// layer is the last layer (from 1) that holds this path, with an
	// entry of its own (explicit) or as the parent of one. A whiteout in
	// that same layer must not hide it: whiteouts only hide lower layers.
	layer    int
	explicit bool
	// clean is the layer in which this subtree was last stripped of lower
	// layers' entries; it stays so for the rest of that layer, since all
	// that layer adds is its own. It makes each node cost one visit per
	// layer however many whiteouts name it.
	clean int
}

// FS is the filesystem an image's layers produce once applied in order, the
// way an overlay snapshotter presents it to a container.
type FS struct {
	lim   Limits
	root  *node
	layer int   // the layer being applied, from 1
	count int   // tar entries and implied directories seen, against MaxEntries
	kept  int64 // bytes of content referenced by live entries
}

// Flatten applies the layers of img, bottom first. Zero fields of lim mean
// the defaults.
func Flatten(img v1.Image, lim Limits) (*FS, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading image layers: %w", err)
	}
	return FlattenLayers(layers, lim)
}

// FlattenLayers applies layers in order, layers[0] at the bottom. Errors
// number layers from 1, bottom first, and name the layer's digest.
func FlattenLayers(layers []v1.Layer, lim Limits) (*FS, error) {
	f := newFS(lim)
	for _, l := range layers {
		if err := f.AddLayer(l); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Clone returns a copy of f to which layers can be added without changing
// f, so a base flattened once serves every image built on it. File contents
// are shared: nothing changes them once read.
func (f *FS) Clone() *FS {
	g := *f
	g.root = cloneNode(f.root, map[*blob]*blob{})
	return &g
}

// cloneNode copies n's subtree; blobs maps each blob to its copy, so hard
// links keep sharing one.
func cloneNode(n *node, blobs map[*blob]*blob) *node {
	c := *n
	if n.content != nil {
		b := blobs[n.content]
		if b == nil {
			b = &blob{data: n.content.data, refs: n.content.refs}
			blobs[n.content] = b
		}
		c.content = b
	}
	if n.children != nil {
		c.children = make(map[string]*node, len(n.children))
		for name, child := range n.children {
			c.children[name] = cloneNode(child, blobs)
		}
	}
	return &c
}

// AddLayer applies l on top of the layers already applied, as Flatten does
// for each of an image's layers.
func (f *FS) AddLayer(l v1.Layer) error {
	if err := f.addLayer(l); err != nil {
		return fmt.Errorf("reading layer %d (%s): %w", f.layer, layerName(l), err)
	}
	return nil
}

func newFS(lim Limits) *FS {
	return &FS{
		lim:  lim.withDefaults(),
		root: &node{Entry: Entry{Path: "/", Type: TypeDir, Mode: 0o755}, children: map[string]*node{}},
	}
}

// layerName is only called on the error path: a tarball layer computes
// its digest by compressing itself.
func layerName(l v1.Layer) string {
	if d, err := l.Digest(); err == nil {
		return d.String()
	}
	if d, err := l.DiffID(); err == nil {
		return "diffid " + d.String()
	}
	return "unknown digest"
}

func (f *FS) addLayer(l v1.Layer) error {
	f.layer++
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer rc.Close()
	return f.readLayer(rc)
}

// readLayer applies the uncompressed tar r as layer number f.layer. Each
// entry is applied as it is read, so memory holds the image as it stands
// plus one file, never a whole layer on top of what it replaces.
func (f *FS) readLayer(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar header: %w", err)
		}
		if err := f.countEntry(); err != nil {
			return err
		}
		if len(hdr.Name) > maxNameLen {
			return fmt.Errorf("tar entry name of %d bytes is longer than %d", len(hdr.Name), maxNameLen)
		}
		if len(hdr.Linkname) > maxNameLen {
			return fmt.Errorf("tar entry %q: link target of %d bytes is longer than %d", hdr.Name, len(hdr.Linkname), maxNameLen)
		}
		if hdr.Size < 0 {
			return fmt.Errorf("tar entry %q: negative size %d", hdr.Name, hdr.Size)
		}
		p := cleanPath(hdr.Name)
		parent, base := path.Dir(p), path.Base(p)
		if strings.Contains(parent, "/"+whiteoutPrefix) {
			continue // inside AUFS bookkeeping (.wh..wh.plnk/...) or a whiteout: meaningless
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			if err := f.whiteout(parent, base); err != nil {
				return err
			}
			continue
		}
		e := Entry{Path: p, Mode: fileMode(hdr.Mode), UID: hdr.Uid, GID: hdr.Gid}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			e.Type = TypeFile
			e.Size = hdr.Size
			if hdr.Size > f.lim.MaxFileSize {
				break // recorded without content; ReadFile says why
			}
			if f.kept-f.freedBy(p)+hdr.Size > f.lim.MaxTotalSize {
				return fmt.Errorf("tar entry %q: file contents exceed %d bytes (MaxTotalSize)", hdr.Name, f.lim.MaxTotalSize)
			}
			data, err := readContent(tr, hdr.Size)
			if err != nil {
				return fmt.Errorf("reading content of %q: %w", hdr.Name, err)
			}
			e.content = &blob{data: data}
		case tar.TypeDir:
			e.Type = TypeDir
		case tar.TypeSymlink:
			e.Type = TypeSymlink
			e.Linkname = hdr.Linkname
		case tar.TypeLink:
			// A hard link is its target's inode: same content and
			// metadata, as the target is at this point of the layer.
			t := f.lookup(cleanPath(hdr.Linkname))
			if t == nil || t.Type == TypeDir {
				continue
			}
			e = t.Entry
			e.Path = p
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			e.Type = TypeOther
		default:
			continue // pax global headers, GNU volume labels, unknown types
		}
		if err := f.put(e); err != nil {
			return err
		}
	}
}

// freedBy is how much kept content replacing p will release.
func (f *FS) freedBy(p string) int64 {
	if n := f.lookup(p); n != nil && n.content != nil && n.content.refs == 1 {
		return int64(len(n.content.data))
	}
	return 0
}

// readContent reads exactly size bytes, growing the buffer as data
// arrives, so a header that claims a size its stream does not have costs
// nothing up front.
func readContent(r io.Reader, size int64) ([]byte, error) {
	const chunk = 8 << 20
	if size <= chunk {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := make([]byte, 0, chunk)
	for int64(len(buf)) < size {
		n := min(size-int64(len(buf)), chunk)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(r, buf[int64(len(buf))-n:]); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func (f *FS) countEntry() error {
	f.count++
	if f.count > f.lim.MaxEntries {
		return fmt.Errorf("more than %d entries", f.lim.MaxEntries)
	}
	return nil
}

// cleanPath turns a tar name into a clean absolute path that never climbs
// above the root: "./a", "/a", "../../a" all become "/a".
func cleanPath(name string) string {
	return path.Clean("/" + name)
}

// fileMode keeps the permission and special bits of a tar mode.
func fileMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// whiteout applies the whiteout file base in dir: ".wh..wh..opq" hides
// everything lower layers put under dir, ".wh.<name>" hides dir/<name>.
// Entries of the current layer stay, wherever they are in the tar.
func (f *FS) whiteout(dir, base string) error {
	name := base[len(whiteoutPrefix):]
	if base != whiteoutOpaque && (strings.HasPrefix(base, whiteoutMeta) || name == "" || name == "." || name == "..") {
		return nil // AUFS bookkeeping (.wh..wh.plnk and the like) or no name at all
	}
	// The whiteout file lives in a directory of this layer, which hides a
	// lower non-directory there as any directory would.
	d, err := f.ensureDir(dir)
	if err != nil {
		return err
	}
	if base == whiteoutOpaque {
		f.hideLower(d)
		return nil
	}
	c := d.children[name]
	switch {
	case c == nil:
	case c.layer < f.layer:
		f.release(c)
		delete(d.children, name)
	case c.Type == TypeDir:
		// This layer holds the directory: only what lower layers put in
		// it goes, and, if the layer has no entry for it, their metadata.
		if !c.explicit {
			c.Mode, c.UID, c.GID = 0o755, 0, 0
		}
		f.hideLower(c)
	}
	return nil
}

// hideLower removes from n's subtree whatever lower layers put there. A
// directory this layer holds only as a parent takes default metadata, as
// the lower directory that gave it its own is gone.
func (f *FS) hideLower(n *node) {
	if n.clean == f.layer {
		return
	}
	n.clean = f.layer
	for name, c := range n.children {
		if c.layer < f.layer {
			f.release(c)
			delete(n.children, name)
			continue
		}
		if c.Type == TypeDir {
			if !c.explicit {
				c.Mode, c.UID, c.GID = 0o755, 0, 0
			}
			f.hideLower(c)
		}
	}
}

// put places one entry, replacing whatever was at its path; only a
// directory over a directory merges (keeping the children), as in overlay.
func (f *FS) put(e Entry) error {
	if e.Path == "/" {
		if e.Type == TypeDir {
			f.root.Mode, f.root.UID, f.root.GID = e.Mode, e.UID, e.GID
		}
		return nil
	}
	parent, err := f.ensureDir(path.Dir(e.Path))
	if err != nil {
		return err
	}
	name := path.Base(e.Path)
	old := parent.children[name]
	if old != nil && old.Type == TypeDir && e.Type == TypeDir {
		old.Mode, old.UID, old.GID = e.Mode, e.UID, e.GID
		old.layer, old.explicit = f.layer, true
		return nil
	}
	n := &node{Entry: e, layer: f.layer, explicit: true}
	if e.Type == TypeDir {
		n.children = map[string]*node{}
		n.clean = f.layer
	}
	if n.content != nil {
		if n.content.refs == 0 {
			f.kept += int64(len(n.content.data))
		}
		n.content.refs++
	}
	if old != nil {
		f.release(old)
	}
	parent.children[name] = n
	return nil
}

// ensureDir returns the directory at p (clean, absolute), creating the
// missing ones, and marks each as held by the current layer. An entry's
// parents are directories in the layer that holds it, so a lower file or
// symlink in the way is replaced, not followed: an overlay upper
// directory hides a lower non-directory.
func (f *FS) ensureDir(p string) (*node, error) {
	n := f.root
	if p == "/" {
		return n, nil
	}
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		start := strings.LastIndexByte(p[:i], '/') + 1
		name := p[start:i]
		c := n.children[name]
		switch {
		case c == nil || c.Type != TypeDir:
			if err := f.countEntry(); err != nil {
				return nil, err
			}
			if c != nil {
				f.release(c)
			}
			c = &node{
				Entry:    Entry{Path: p[:i], Type: TypeDir, Mode: 0o755},
				children: map[string]*node{},
				layer:    f.layer,
				clean:    f.layer,
			}
			n.children[name] = c
		case c.layer < f.layer:
			c.layer, c.explicit = f.layer, false
		}
		n = c
	}
	return n, nil
}

// release drops n and its subtree's hold on their content.
func (f *FS) release(n *node) {
	if n.content != nil {
		n.content.refs--
		if n.content.refs == 0 {
			f.kept -= int64(len(n.content.data))
		}
	}
	for _, c := range n.children {
		f.release(c)
	}
}

// lookup finds p (clean, absolute) without following any symlink.
func (f *FS) lookup(p string) *node {
	n := f.root
	if p == "/" {
		return n
	}
	for _, name := range strings.Split(p[1:], "/") {
		if n.children == nil {
			return nil
		}
		if n = n.children[name]; n == nil {
			return nil
		}
	}
	return n
}

// Lstat returns the entry at p without following symlinks; p is cleaned
// against "/" first.
func (f *FS) Lstat(p string) (*Entry, bool) {
	n := f.lookup(cleanPath(p))
	if n == nil {
		return nil, false
	}
	e := n.Entry
	return &e, true
}

// Resolve follows symlinks in every component of p, final one included,
// the way the kernel would inside a chroot at the image root: absolute
// targets start again at the image root, ".." stops at it, a name
// followed by "/" must be a directory. It returns the path reached and its
// entry. The fuzz tests hold it to the kernel's openat2(RESOLVE_IN_ROOT). A path that leads nowhere is an error
// wrapping fs.ErrNotExist; more than 40 links is an error wrapping
// syscall.ELOOP.
func (f *FS) Resolve(p string) (string, *Entry, error) {
	n, err := f.resolve(p)
	if err != nil {
		return "", nil, err
	}
	e := n.Entry
	return e.Path, &e, nil
}

func (f *FS) resolve(p string) (*node, error) {
	stack := []*node{f.root} // the directories walked so far, for ".."
	rest := p
	hops := 0
	for rest != "" {
		var name string
		var slash bool
		name, rest, slash = strings.Cut(rest, "/")
		if name == "" {
			continue
		}
		cur := stack[len(stack)-1]
		if cur.Type != TypeDir {
			return nil, fmt.Errorf("resolving %s: %s is not a directory: %w", p, cur.Path, fs.ErrNotExist)
		}
		switch name {
		case ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		c := cur.children[name]
		if c == nil {
			return nil, fmt.Errorf("resolving %s: %s: %w", p, path.Join(cur.Path, name), fs.ErrNotExist)
		}
		if c.Type != TypeSymlink {
			// A slash after a name, even a trailing one, asks for a
			// directory, as in the kernel.
			if slash && c.Type != TypeDir {
				return nil, fmt.Errorf("resolving %s: %s is not a directory: %w", p, c.Path, fs.ErrNotExist)
			}
			stack = append(stack, c)
			continue
		}
		hops++
		if hops > maxSymlinkHops {
			return nil, fmt.Errorf("resolving %s: symlink loop: more than %d links followed: %w", p, maxSymlinkHops, syscall.ELOOP)
		}
		if c.Linkname == "" {
			return nil, fmt.Errorf("resolving %s: %s is a symlink to nothing: %w", p, c.Path, fs.ErrNotExist)
		}
		if strings.HasPrefix(c.Linkname, "/") {
			stack = stack[:1]
		}
		if slash {
			rest = c.Linkname + "/" + rest
		} else {
			rest = c.Linkname
		}
	}
	return stack[len(stack)-1], nil
}

// ReadFile resolves p and returns a copy of the regular file there.
func (f *FS) ReadFile(p string) ([]byte, error) {
	data, err := f.readShared(p)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, data...), nil
}

// readShared is ReadFile without the copy: the image's own bytes, which
// the caller must not change. The checks only read, and the files they
// read (the binary, its loader, every candidate library) can be large.
func (f *FS) readShared(p string) ([]byte, error) {
	n, err := f.resolve(p)
	if err != nil {
		return nil, err
	}
	if n.Type != TypeFile {
		return nil, fmt.Errorf("reading %s: %s is a %s, not a regular file", p, n.Path, n.Type)
	}
	if n.content == nil && n.Size > 0 {
		return nil, fmt.Errorf("reading %s: %s is too large (%d bytes, MaxFileSize is %d): content not kept", p, n.Path, n.Size, f.lim.MaxFileSize)
	}
	if n.content == nil {
		return []byte{}, nil
	}
	return n.content.data, nil
}

// Walk calls fn for every entry, the root "/" first, parents before their
// children and siblings in byte order of their names (the order of
// fs.WalkDir). fn returning fs.SkipDir for a directory skips its
// children; fs.SkipAll ends the walk without error.
func (f *FS) Walk(fn func(e *Entry) error) error {
	err := f.walk(f.root, func(n *node) error {
		e := n.Entry
		return fn(&e)
	})
	if err == fs.SkipAll {
		return nil
	}
	return err
}

func (f *FS) walk(n *node, fn func(n *node) error) error {
	if err := fn(n); err != nil {
		if err == fs.SkipDir && n.Type == TypeDir {
			return nil
		}
		return err
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := f.walk(n.children[name], fn); err != nil {
			if err == fs.SkipDir {
				return nil // a non-directory asked to skip the rest of its parent
			}
			return err
		}
	}
	return nil
}

// Materialize writes the tree under dir, an empty directory the caller
// created, for a chroot: directories, regular files with their permission
// bits, symlinks with their targets unchanged, hard links as hard links
// (so the disk holds each content once, as MaxTotalSize counted it: copies
// would let a small layer of links to one large file fill the disk);
// devices and fifos are skipped. Ownership is not applied (that needs
// privileges; the run maps ids through a user namespace instead), and
// setuid/setgid bits are dropped, so that an untrusted image never leaves a
// setuid file owned by kiln's user on the host.
//
// Every write goes through an os.Root at dir, and the tree itself never
// has a symlink as a parent, so nothing can land outside dir whatever the
// image's symlinks say. A file whose content was not kept (over
// MaxFileSize) is an error: an empty stand-in could change what the
// binary does.
func (f *FS) Materialize(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("materializing image: %w", err)
	}
	defer root.Close()
	var dirs []*node
	written := map[*blob]string{} // content -> the first path it was written at
	err = f.walk(f.root, func(n *node) error {
		if n == f.root {
			return nil
		}
		rel := n.Path[1:]
		switch n.Type {
		case TypeDir:
			// Owner-writable until every child is in; the real mode is
			// set afterwards.
			if err := root.Mkdir(rel, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, n)
		case TypeFile:
			if first, ok := written[n.content]; ok {
				return root.Link(first, rel)
			}
			if n.content != nil {
				written[n.content] = rel
			}
			return writeFile(root, &n.Entry, f.lim.MaxFileSize)
		case TypeSymlink:
			if n.Linkname == "" {
				return nil // Linux cannot represent it; resolving it fails in the image too
			}
			return root.Symlink(n.Linkname, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("materializing image: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].Path[1:], diskMode(dirs[i].Mode)); err != nil {
			return fmt.Errorf("materializing image: %w", err)
		}
	}
	return nil
}

func writeFile(root *os.Root, e *Entry, maxSize int64) error {
	if e.content == nil && e.Size > 0 {
		return fmt.Errorf("%s: content not kept (%d bytes, MaxFileSize is %d)", e.Path, e.Size, maxSize)
	}
	// O_EXCL: never write through anything already there.
	w, err := root.OpenFile(e.Path[1:], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if e.content != nil {
		if _, err := w.Write(e.content.data); err != nil {
			w.Close()
			return err
		}
	}
	if err := w.Chmod(diskMode(e.Mode)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// diskMode is the mode Materialize writes: permissions and sticky, never
// setuid or setgid.
func diskMode(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSticky)
}
