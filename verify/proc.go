package verify

import (
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
)

// proc is what a process started from the image sees: the image's files
// through its credentials and working directory, and its environment as a
// runtime passes it. The rules kiln re-implements (the loader's search,
// net's configuration files, crypto/x509's and time's files) are all
// decided by what open, stat and read return to that process, so they are
// asked of proc, which answers with the kernel's errors: ENOENT, ENOTDIR,
// EACCES, ELOOP, EISDIR.
type proc struct {
	fsys   *FS
	env    []string
	uid    int
	gid    int
	groups []int  // supplementary groups
	cwd    string // absolute
}

// newProc is a process of the image as root in cwd "/", for callers that
// know nothing more.
func newProc(fsys *FS, env []string) *proc {
	return &proc{fsys: fsys, env: env, cwd: "/"}
}

// getenv is getenv(3) of musl and Go's os.Getenv: the first NAME= entry.
func (p *proc) getenv(key string) (string, bool) { return envLookup(p.env, key) }

// abs makes name absolute against the working directory.
func (p *proc) abs(name string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return strings.TrimSuffix(p.cwd, "/") + "/" + name
}

// walk resolves name the way the kernel does for this process: every
// directory passed needs search permission, symlinks are followed (the
// last one only when followLast), at most 40 of them, ".." stops at the
// root, and a name followed by "/" must be a directory. It returns the
// entry reached (Lstat of it when the last is a symlink not followed).
// Devices and fifos count as absent: the sandbox does not create them.
func (p *proc) walk(name string, followLast bool) (*Entry, error) {
	if name == "" {
		return nil, syscall.ENOENT
	}
	dir := p.root()
	rest := p.abs(name)
	hops := 0
	for rest != "" {
		var comp string
		var slash bool
		comp, rest, slash = strings.Cut(rest, "/")
		if comp == "" || comp == "." {
			continue
		}
		if !p.may(dir, 1) {
			return nil, syscall.EACCES
		}
		if comp == ".." {
			if dir.Path != "/" {
				up, _ := p.fsys.Lstat(path.Dir(dir.Path))
				dir = up
			}
			continue
		}
		e, ok := p.fsys.Lstat(path.Join(dir.Path, comp))
		if !ok || e.Type == TypeOther {
			return nil, syscall.ENOENT
		}
		more := rest != "" || slash
		if e.Type == TypeSymlink && (more || followLast) {
			if hops++; hops > maxSymlinkHops {
				return nil, syscall.ELOOP
			}
			if e.Linkname == "" {
				return nil, syscall.ENOENT
			}
			if strings.HasPrefix(e.Linkname, "/") {
				dir = p.root()
			}
			if more {
				rest = e.Linkname + "/" + rest
			} else {
				rest = e.Linkname
			}
			continue
		}
		if more && e.Type != TypeDir {
			return nil, syscall.ENOTDIR
		}
		if !more {
			return e, nil
		}
		dir = e
	}
	return dir, nil
}

func (p *proc) root() *Entry {
	if e, ok := p.fsys.Lstat("/"); ok {
		return e
	}
	return &Entry{Path: "/", Type: TypeDir, Mode: 0o755}
}

// may reports whether the process has the access want (4 read, 2 write,
// 1 execute/search) to e. Root bypasses permission bits (in the sandbox's
// user namespace it owns every file of the image), except that a file
// needs some execute bit to be executed.
func (p *proc) may(e *Entry, want fs.FileMode) bool {
	if p.uid == 0 {
		return want&1 == 0 || e.Type == TypeDir || e.Mode&0o111 != 0
	}
	bits := e.Mode.Perm()
	switch {
	case e.UID == p.uid:
		bits >>= 6
	case e.GID == p.gid || slices.Contains(p.groups, e.GID):
		bits >>= 3
	}
	return bits&want == want
}

// stat is stat(2): the entry name leads to.
func (p *proc) stat(name string) (*Entry, error) { return p.walk(name, true) }

// open is open(name, O_RDONLY): it fails as the kernel would, and a
// directory opens (only reading it fails).
func (p *proc) open(name string) (*Entry, error) {
	e, err := p.walk(name, true)
	if err != nil {
		return nil, err
	}
	if !p.may(e, 4) {
		return nil, syscall.EACCES
	}
	return e, nil
}

// readFile is os.ReadFile: open, then read the whole file; a directory
// opens and then fails to read with EISDIR.
func (p *proc) readFile(name string) ([]byte, error) {
	e, err := p.open(name)
	if err != nil {
		return nil, err
	}
	if e.Type == TypeDir {
		return nil, syscall.EISDIR
	}
	return p.content(e)
}

// content is the bytes of a regular file the process opened, in place:
// callers only read them. Every read of proc goes through here.
func (p *proc) content(e *Entry) ([]byte, error) { return p.fsys.readShared(e.Path) }

// readDir is os.ReadDir: the entries of a directory the process may read,
// sorted by name, as Lstat sees them.
func (p *proc) readDir(name string) ([]*Entry, error) {
	d, err := p.open(name)
	if err != nil {
		return nil, err
	}
	if d.Type != TypeDir {
		return nil, syscall.ENOTDIR
	}
	var out []*Entry
	err = p.fsys.Walk(func(e *Entry) error {
		switch {
		case e.Path == d.Path:
			return nil
		case path.Dir(e.Path) == d.Path:
			if e.Type != TypeOther {
				out = append(out, e)
			}
			if e.Type == TypeDir {
				return fs.SkipDir
			}
		case e.Type == TypeDir && !strings.HasPrefix(d.Path+"/", e.Path+"/") && e.Path != "/":
			return fs.SkipDir // not on the way to d
		}
		return nil
	})
	return out, err
}

// isNotExist is os.IsNotExist for the errors proc returns: only ENOENT
// (Go does not count ENOTDIR).
func isNotExist(err error) bool { return err == syscall.ENOENT }

// isPermission is errors.Is(err, fs.ErrPermission): EACCES or EPERM.
func isPermission(err error) bool { return err == syscall.EACCES || err == syscall.EPERM }
