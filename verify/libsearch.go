package verify

import (
	"bytes"
	"cmp"
	"fmt"
	"iter"
	"path"
	"strings"
)

// loaded is one object the image's loader would map: the binary, its
// interpreter, and every library it finds.
type loaded struct {
	path string // resolved path in the image: what is read
	// origin is what $ORIGIN expands to in this object's run paths: the
	// directory of the name the loader found it under (symlinks not
	// resolved); for the binary, of its resolved path (/proc/self/exe).
	origin string
	how    string // how it was found: "RUNPATH", "ld.so.cache", "default dir", …
	elf    *ELF
	needy  string // who needed it first
}

// linkGraph is the result of resolving every DT_NEEDED transitively the way
// the image's own loader does at run time.
type linkGraph struct {
	objects []*loaded          // in load order, binary first
	byName  map[string]*loaded // DT_NEEDED name (and SONAME) -> object
	missing []string           // "libfoo.so.1 (needed by /app): searched …"
}

// searcher knows one image's loader: its kind, its default directories,
// the image's ld.so.cache or musl path file, and LD_LIBRARY_PATH.
type searcher struct {
	fsys     *FS
	family   string // glibc or musl
	arch     string
	cache    *ldCache // nil when the image has no usable /etc/ld.so.cache
	defaults []string
	envPath  []string
	tries    int // paths opened so far, against maxSearchPaths
}

func newSearcher(fsys *FS, family, arch, loaderPath string, env []string) *searcher {
	s := &searcher{fsys: fsys, family: family, arch: arch}
	if p := envValue(env, "LD_LIBRARY_PATH"); p != "" {
		s.envPath = splitPath(p)
	}
	switch family {
	case "musl":
		s.defaults = []string{"/lib", "/usr/local/lib", "/usr/lib"}
		if data, err := fsys.readShared("/etc/ld-musl-" + muslArch(arch) + ".path"); err == nil {
			s.defaults = splitPath(strings.ReplaceAll(string(data), "\n", ":"))
		}
	default:
		if data, err := fsys.readShared("/etc/ld.so.cache"); err == nil {
			s.cache, _ = parseLdCache(data) // an unusable cache is skipped, as the loader does
		}
		s.defaults = glibcSystemDirs(fsys, loaderPath)
	}
	return s
}

// glibcSystemDirs reads the default search directories compiled into the
// image's glibc loader: a run of NUL-terminated absolute directory names,
// each ending in "/" (Debian: /lib/x86_64-linux-gnu/ /usr/lib/x86_64-linux-gnu/
// /lib/ /usr/lib/). When the run cannot be found it falls back to the
// directories every glibc searches.
func glibcSystemDirs(fsys *FS, loaderPath string) []string {
	if data, err := fsys.readShared(loaderPath); err == nil {
		// The loader is the image's and may be anything up to
		// MaxFileSize: scan it in place, never split all of it at once.
		for rest := data; len(rest) > 0; {
			var run []byte
			run, rest, _ = bytes.Cut(rest, []byte{0, 0})
			if dirs := systemDirRun(bytes.TrimLeft(run, "\x00")); dirs != nil {
				return dirs
			}
		}
	}
	return []string{"/lib", "/usr/lib"}
}

// maxSystemDirs bounds a run of directory names; glibc compiles in four.
const maxSystemDirs = 64

// systemDirRun returns the directories of run, NUL-separated names that
// each look like a library directory, or nil if it is not such a run of
// two or more.
func systemDirRun(run []byte) []string {
	var dirs []string
	for {
		p, next, more := bytes.Cut(run, []byte{0})
		if len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' || !bytes.Contains(p, []byte("lib")) || bytes.ContainsAny(p, " :$") || len(dirs) == maxSystemDirs {
			return nil
		}
		dirs = append(dirs, strings.TrimSuffix(string(p), "/"))
		if !more {
			break
		}
		run = next
	}
	if len(dirs) < 2 {
		return nil
	}
	return dirs
}

func splitPath(p string) []string {
	var out []string
	for d := range strings.SplitSeq(p, ":") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

func muslArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armhf"
	case "386":
		return "i386"
	case "ppc64le":
		return "powerpc64le"
	}
	return goarch
}

// muslSelf reports whether musl's loader treats name as itself: musl is
// libc, libpthread, librt, libm, libdl, libutil and libxnet in one file.
func muslSelf(name string) bool {
	rest, ok := strings.CutPrefix(name, "lib")
	if !ok {
		return false
	}
	for _, r := range []string{"c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."} {
		if strings.HasPrefix(rest, r) {
			return true
		}
	}
	return false
}

// resolve maps the binary and, transitively, every DT_NEEDED.
func (s *searcher) resolve(binPath string, bin *ELF, interp *loaded) *linkGraph {
	g := &linkGraph{byName: map[string]*loaded{}}
	root := &loaded{path: binPath, origin: path.Dir(binPath), how: "binary", elf: bin}
	g.objects = append(g.objects, root)
	if interp != nil {
		g.objects = append(g.objects, interp)
		if interp.elf.SOName != "" {
			g.byName[interp.elf.SOName] = interp
		}
		g.byName[path.Base(interp.path)] = interp
	}
	parents := map[*loaded]*loaded{}
	i := 0
	for ; i < len(g.objects) && len(g.objects) < maxObjects; i++ {
		obj := g.objects[i]
		for _, name := range obj.elf.Needed {
			if _, done := g.byName[name]; done {
				continue
			}
			if s.family == "musl" && muslSelf(name) && interp != nil {
				g.byName[name] = interp
				continue
			}
			found, why := s.find(name, obj, parents)
			if found == nil {
				g.missing = append(g.missing, fmt.Sprintf("%s (needed by %s): %s", name, obj.path, why))
				g.byName[name] = nil
				continue
			}
			found.needy = obj.path
			parents[found] = obj
			g.byName[name] = found
			if found.elf.SOName != "" && g.byName[found.elf.SOName] == nil {
				g.byName[found.elf.SOName] = found
			}
			g.objects = append(g.objects, found)
		}
	}
	if i < len(g.objects) {
		// Not proven is not passed: what the search never reached could be missing.
		g.missing = append(g.missing, fmt.Sprintf("the link graph has more than %d shared objects; the DT_NEEDED of %d of them were not looked up", maxObjects, len(g.objects)-i))
	}
	return g
}

// maxObjects bounds the shared objects one link graph loads.
const maxObjects = 1000

// maxSearchPaths bounds the paths one image's library search tries in
// all. Run paths and DT_NEEDED come from the image's objects: a binary
// with a DT_RUNPATH of thousands of directories and hundreds of
// DT_NEEDED would otherwise make the search, and the list of places the
// report names, as long as their product.
const maxSearchPaths = 100_000

// maxSearchedShown bounds the places one missing library's finding
// lists.
const maxSearchedShown = 32

// candidate is one place the loader looks for a library: the path to
// open, what found it (link.needed names it), and a note when the list of
// places searched should name it otherwise. A candidate without a path
// only notes a step the search could not take.
type candidate struct {
	path, how, note string
}

// find looks for a library the way the image's loader would for a request
// from obj. It returns the object, or nil and why not: the places
// searched, or that the search gave up.
func (s *searcher) find(name string, obj *loaded, parents map[*loaded]*loaded) (*loaded, string) {
	var searched []string
	for c := range s.candidates(name, obj, parents) {
		if len(searched) < maxSearchedShown {
			searched = append(searched, cmp.Or(c.note, c.path))
		} else if len(searched) == maxSearchedShown {
			searched = append(searched, "…")
		}
		if c.path == "" {
			continue
		}
		if s.tries++; s.tries > maxSearchPaths {
			return nil, fmt.Sprintf("gave up: the search has tried %d paths", maxSearchPaths)
		}
		if l := s.open(c.path, c.how); l != nil {
			return l, ""
		}
	}
	return nil, "searched " + strings.Join(searched, ", ")
}

// candidates yields, in order, the places the image's loader looks for
// name when obj needs it.
func (s *searcher) candidates(name string, obj *loaded, parents map[*loaded]*loaded) iter.Seq[candidate] {
	return func(yield func(candidate) bool) {
		in := func(dirs []string, how string, owner *loaded) bool {
			for _, d := range dirs {
				if owner != nil {
					// Each object's run paths expand $ORIGIN with that
					// object's own origin.
					d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", owner.origin), "$ORIGIN", owner.origin)
				}
				if !yield(candidate{path: path.Join(d, name), how: how}) {
					return false
				}
			}
			return true
		}
		if strings.Contains(name, "/") {
			in([]string{"/"}, "path in DT_NEEDED", nil)
			return
		}
		if s.family == "musl" {
			// musl: LD_LIBRARY_PATH, then the rpath of the requester and of
			// each object up the chain that needed it, then its path file.
			if !in(s.envPath, "LD_LIBRARY_PATH", nil) {
				return
			}
			for p := obj; p != nil; p = parents[p] {
				if !in(p.elf.RunPath, "rpath of "+p.path, p) || !in(p.elf.RPath, "rpath of "+p.path, p) {
					return
				}
			}
			in(s.defaults, "musl default path", nil)
			return
		}
		// glibc (ld.so(8)): DT_RPATH of the requester and its loaders when it
		// has no DT_RUNPATH, LD_LIBRARY_PATH, DT_RUNPATH of the requester,
		// /etc/ld.so.cache, then the loader's system directories.
		if len(obj.elf.RunPath) == 0 {
			for p := obj; p != nil; p = parents[p] {
				if len(p.elf.RunPath) == 0 && !in(p.elf.RPath, "DT_RPATH of "+p.path, p) {
					return
				}
			}
		}
		if !in(s.envPath, "LD_LIBRARY_PATH", nil) || !in(obj.elf.RunPath, "DT_RUNPATH of "+obj.path, obj) {
			return
		}
		if s.cache == nil {
			if !yield(candidate{note: "no usable /etc/ld.so.cache"}) {
				return
			}
		} else {
			for _, p := range s.cache.lookup(name, s.arch) {
				if !yield(candidate{path: p, how: "ld.so.cache", note: p + " (ld.so.cache)"}) {
					return
				}
			}
		}
		in(s.defaults, "system directory", nil)
	}
}

// open returns the object at p if it exists in the image and is an ELF
// object of the right architecture; the loader skips anything else and
// keeps searching.
func (s *searcher) open(p, how string) *loaded {
	real, e, err := s.fsys.Resolve(p)
	if err != nil || e.Type != TypeFile {
		return nil
	}
	data, err := s.fsys.readShared(real)
	if err != nil {
		return nil
	}
	obj, err := ReadELF(data)
	if err != nil || obj.Arch != s.arch {
		return nil
	}
	return &loaded{path: real, origin: path.Dir(path.Clean("/" + p)), how: how, elf: obj}
}
