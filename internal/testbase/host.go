package testbase

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// MissingHostFileError reports a host file that a stand-in needs and the
// Debian package that installs it.
type MissingHostFileError struct {
	Path    string // absolute path on the host
	Package string // Debian package that ships Path
}

func (e *MissingHostFileError) Error() string {
	return fmt.Sprintf("host file %s is missing: install it with `apt-get install -y %s`", e.Path, e.Package)
}

// host reads files of the machine's Debian packages. root is "/" except in
// tests, which point it at an empty directory to provoke missing files.
type host struct {
	root string
}

func (h host) abs(p string) string { return filepath.Join(h.root, filepath.FromSlash(p)) }

// read returns the content of the host file p, following symlinks.
func (h host) read(p, pkg string) ([]byte, error) {
	b, err := os.ReadFile(h.abs(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &MissingHostFileError{Path: p, Package: pkg}
	}
	if err != nil {
		return nil, fmt.Errorf("reading host file: %w", err)
	}
	return b, nil
}

const zoneinfoDir = "/usr/share/zoneinfo"

// addZoneinfo copies the host's tzdata zone files into dst, keeping
// symlinks as symlinks. It leaves out posix/ and right/, which Debian ships
// as full copies of the zone files (right/ with leap seconds) and which
// neither Go nor glibc reads by default, and absolute symlinks: the only
// one, localtime -> /etc/localtime, would dangle in these images.
func (h host) addZoneinfo(dst rootfs) error {
	// A zoneinfo dir without Etc/UTC is a half-removed tzdata.
	if _, err := h.read(zoneinfoDir+"/Etc/UTC", "tzdata"); err != nil {
		return err
	}
	// WalkDir does not descend into a root that is a symlink.
	src, err := filepath.EvalSymlinks(h.abs(zoneinfoDir))
	if err != nil {
		return fmt.Errorf("resolving %s: %w", zoneinfoDir, err)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking %s: %w", zoneinfoDir, err)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (rel == "posix" || rel == "right") {
			return filepath.SkipDir
		}
		name := path.Join(zoneinfoDir, rel)
		switch {
		case d.IsDir():
			dst.dir(name, modeDir, 0, 0)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("reading host symlink %s: %w", name, err)
			}
			if !path.IsAbs(target) {
				dst.symlink(name, target)
			}
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("reading host file %s: %w", name, err)
			}
			dst.file(name, modeFile, b)
		}
		return nil
	})
}
