package testbase

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Normalised modes. Host modes and the umask never reach a layer.
const (
	modeDir    = 0o755
	modeFile   = 0o644
	modeExec   = 0o755
	modeSticky = 0o1777
)

// epoch is the mtime of every layer entry and the creation time of every image.
var epoch = time.Unix(0, 0).UTC()

// node is one entry of a stand-in's root filesystem.
type node struct {
	typeflag byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode     int64
	uid, gid int
	data     []byte // regular files
	target   string // symlinks
}

// rootfs is a root filesystem keyed by clean absolute path ("/etc/passwd").
// Parent directories are created implicitly as root-owned 0755 directories.
type rootfs map[string]node

func (fs rootfs) clone() rootfs { return maps.Clone(fs) }

func (fs rootfs) put(p string, n node) {
	p = path.Clean("/" + p)
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := fs[d]; !ok {
			fs[d] = node{typeflag: tar.TypeDir, mode: modeDir}
		}
	}
	fs[p] = n
}

func (fs rootfs) dir(p string, mode int64, uid, gid int) {
	fs.put(p, node{typeflag: tar.TypeDir, mode: mode, uid: uid, gid: gid})
}

func (fs rootfs) file(p string, mode int64, data []byte) {
	fs.put(p, node{typeflag: tar.TypeReg, mode: mode, data: data})
}

func (fs rootfs) symlink(p, target string) {
	fs.put(p, node{typeflag: tar.TypeSymlink, mode: 0o777, target: target})
}

func (fs rootfs) sortedPaths() []string { return slices.Sorted(maps.Keys(fs)) }

// tar writes the tree as an uncompressed tar stream. Paths sort
// lexically, which puts every directory before its children because a
// parent path is a strict prefix of its children's paths.
func (fs rootfs) tar(w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, p := range fs.sortedPaths() {
		n := fs[p]
		name := strings.TrimPrefix(p, "/")
		if n.typeflag == tar.TypeDir {
			name += "/"
		}
		hdr := &tar.Header{
			Typeflag: n.typeflag,
			Name:     name,
			Linkname: n.target,
			Mode:     n.mode,
			Uid:      n.uid,
			Gid:      n.gid,
			Size:     int64(len(n.data)),
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing tar header for %s: %w", p, err)
		}
		if _, err := tw.Write(n.data); err != nil {
			return fmt.Errorf("writing tar data for %s: %w", p, err)
		}
	}
	return tw.Close()
}

// layer returns the tree as one gzip-compressed OCI layer. The gzip
// header carries no name and no mtime, so equal trees give equal digests
// (for a given Go release's compress/flate).
func (fs rootfs) layer() (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := fs.tar(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// materialize writes fs below root with its normalised modes (ownership
// is left to the caller's uid).
func (fs rootfs) materialize(root string) error {
	for _, p := range fs.sortedPaths() {
		n := fs[p]
		dst := filepath.Join(root, filepath.FromSlash(p))
		var err error
		switch n.typeflag {
		case tar.TypeDir:
			// 0700 so that the caller can still fill it; modes are set below.
			err = os.Mkdir(dst, 0o700)
		case tar.TypeReg:
			err = os.WriteFile(dst, n.data, 0o600)
		case tar.TypeSymlink:
			err = os.Symlink(n.target, dst)
		}
		if err != nil {
			return err
		}
	}
	for _, p := range fs.sortedPaths() {
		if n := fs[p]; n.typeflag != tar.TypeSymlink {
			if err := os.Chmod(filepath.Join(root, filepath.FromSlash(p)), os.FileMode(n.mode&0o777)); err != nil {
				return err
			}
		}
	}
	return nil
}
