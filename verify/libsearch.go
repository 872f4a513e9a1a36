package verify

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"iter"
	"path"
	"strings"
	"syscall"
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
// the image's ld.so.cache or musl path file, LD_LIBRARY_PATH, and the
// process it loads for (whose credentials open the files and whose
// working directory relative entries name).
type searcher struct {
	fsys     *FS
	proc     *proc
	family   string // glibc or musl
	arch     string
	interp   string   // PT_INTERP as the binary names it (musl finds its path file from it)
	cache    *ldCache // nil when the image has no usable /etc/ld.so.cache
	defaults []string // glibc: the loader's system directories; musl: its path (from the path file or built in)
	envPath  []string // LD_LIBRARY_PATH as the loader splits it; nil when unset or empty
	libDST   string   // what glibc's $LIB expands to
	tries    int      // paths opened so far, against maxSearchPaths
	// pathNote says where musl's path came from, and why it is empty
	// when it is.
	pathNote string
}

func newSearcher(fsys *FS, family, arch, loaderPath string, env []string) *searcher {
	return newSearcherFor(newProc(fsys, env), family, arch, loaderPath, "")
}

// newSearcherFor is the loader of family for process p: loaderPath is the
// loader's file in the image, interp the PT_INTERP that named it.
func newSearcherFor(p *proc, family, arch, loaderPath, interp string) *searcher {
	s := &searcher{fsys: p.fsys, proc: p, family: family, arch: arch, interp: interp}
	llp, _ := p.getenv("LD_LIBRARY_PATH")
	switch family {
	case "musl":
		// musl splits at ':' and newline and skips empty elements.
		s.envPath = splitMusl(llp)
		s.defaults, s.pathNote = s.muslPath()
	default:
		if data, err := p.readFile("/etc/ld.so.cache"); err == nil {
			s.cache, _ = parseLdCache(data) // an unusable cache is skipped, as the loader does
		}
		s.defaults = glibcSystemDirs(s.fsys, loaderPath)
		s.libDST = strings.TrimPrefix(s.defaults[0], "/")
		if llp != "" {
			// glibc splits LD_LIBRARY_PATH at ':' and ';'; an empty
			// element is the working directory.
			s.envPath = strings.Split(strings.ReplaceAll(llp, ";", ":"), ":")
		}
	}
	return s
}

// muslPath is musl's system path: the path file next to the loader's
// prefix ("/etc/ld-musl-<arch>.path" for a loader in /lib), whose bytes up
// to the first NUL are the path; a file that exists but cannot be opened
// or read gives an empty path, a missing one the built-in
// /lib:/usr/local/lib:/usr/lib.
func (s *searcher) muslPath() ([]string, string) {
	prefix := ""
	if strings.HasPrefix(s.interp, "/") {
		// Up to the second-to-last slash: /lib/ld-musl-x86_64.so.1 → "".
		last, prev := 0, 0
		for i := 0; i < len(s.interp); i++ {
			if s.interp[i] == '/' {
				prev, last = last, i
			}
		}
		prefix = s.interp[:prev]
	}
	file := prefix + "/etc/ld-musl-" + muslArch(s.arch) + ".path"
	e, err := s.proc.open(file)
	switch {
	case err == syscall.ENOENT:
		return []string{"/lib", "/usr/local/lib", "/usr/lib"}, muslBuiltIn
	case err != nil:
		return nil, file + " cannot be opened (" + err.Error() + "): musl's path is empty"
	case e.Type != TypeFile:
		return nil, file + " cannot be read: musl's path is empty"
	}
	data, err := s.proc.content(e)
	if err != nil {
		return nil, file + " cannot be read: musl's path is empty"
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	if dirs := splitMusl(string(data)); len(dirs) > 0 {
		return dirs, file
	}
	return nil, file + " names no directory"
}

// muslBuiltIn notes musl's compiled-in path.
const muslBuiltIn = "musl's built-in path"

// splitMusl splits a musl search path at ':' and newline, dropping empty
// elements (musl's path_open skips them).
func splitMusl(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == ':' || r == '\n' })
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

// resolve maps the binary and, transitively, every DT_NEEDED, in the
// loaders' breadth-first order.
func (s *searcher) resolve(binPath string, bin *ELF, interp *loaded) *linkGraph {
	g := &linkGraph{byName: map[string]*loaded{}}
	// The binary's $ORIGIN is the directory of /proc/self/exe: its path
	// with every symlink resolved (musl keeps "" for a binary in "/").
	root := &loaded{path: binPath, origin: path.Dir(binPath), how: "binary", elf: bin}
	if s.family == "musl" {
		root.origin = muslOrigin(binPath)
	}
	g.objects = append(g.objects, root)
	byPath := map[string]*loaded{binPath: root}
	if interp != nil {
		g.objects = append(g.objects, interp)
		if interp.elf.SOName != "" {
			g.byName[interp.elf.SOName] = interp
		}
		g.byName[path.Base(interp.path)] = interp
		byPath[interp.path] = interp
	}
	parents := map[*loaded]*loaded{}
	i := 0
	for ; i < len(g.objects) && len(g.objects) < maxObjects; i++ {
		obj := g.objects[i]
		for _, name := range obj.elf.Needed {
			if _, done := g.byName[name]; done {
				continue
			}
			if s.family == "musl" && interp != nil && (muslSelf(name) || name == s.interp) {
				g.byName[name] = interp
				continue
			}
			found, why := s.find(name, obj, parents, root)
			if found == nil {
				g.missing = append(g.missing, fmt.Sprintf("%s (needed by %s): %s", name, obj.path, why))
				g.byName[name] = nil
				continue
			}
			// A file already loaded under another name is that object.
			if same := byPath[found.path]; same != nil {
				g.byName[name] = same
				continue
			}
			found.needy = obj.path
			parents[found] = obj
			g.byName[name] = found
			byPath[found.path] = found
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
// open (as the loader spells it: relative to the working directory when
// it does not start with '/'), what found it (link.needed names it), and
// a note when the list of places searched should name it otherwise. A
// candidate without a path only notes a step the search could not take.
// list numbers the list the candidate belongs to: glibc abandons the
// rest of a list when a file there fails to open for a reason other than
// "not there".
type candidate struct {
	path, how, note string
	list            int
	origin          string // the directory the loader records for what it finds here
}

// outcome is what trying one candidate did.
type outcome int

const (
	tryNext    outcome = iota // not there, or skipped: search on
	tryFound                  // loaded
	tryEndList                // glibc: the rest of this list is skipped
	tryFatal                  // the load fails here
)

// find looks for a library the way the image's loader would for a request
// from obj. It returns the object, or nil and why not: the places
// searched, or what stopped the search.
func (s *searcher) find(name string, obj *loaded, parents map[*loaded]*loaded, main *loaded) (*loaded, string) {
	var searched []string
	skipList := -1
	for c := range s.candidates(name, obj, parents, main) {
		if c.list == skipList {
			continue
		}
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
		l, out, why := s.open(c)
		switch out {
		case tryFound:
			return l, ""
		case tryFatal:
			return nil, fmt.Sprintf("%s: %s, and the %s loader stops there (searched %s)", c.path, why, s.family, strings.Join(searched, ", "))
		case tryEndList:
			skipList = c.list
		}
	}
	if s.family == "musl" && len(s.defaults) == 0 {
		searched = append(searched, "no musl path: "+s.pathNote)
	}
	return nil, "searched " + orNone(strings.Join(searched, ", "))
}

// candidates yields, in order, the places the image's loader looks for
// name when obj needs it.
func (s *searcher) candidates(name string, obj *loaded, parents map[*loaded]*loaded, main *loaded) iter.Seq[candidate] {
	if s.family == "musl" {
		return s.muslCandidates(name, obj, parents)
	}
	return s.glibcCandidates(name, obj, parents, main)
}

// glibcCandidates follows glibc's _dl_map_object (elf/dl-load.c, 2.3x): a
// name with a slash is opened as it is (after $ORIGIN and the other
// dynamic string tokens are expanded); otherwise DT_RPATH of the
// requester and of each object up the chain that loaded it (all only
// when the requester has no DT_RUNPATH; an object with DT_RUNPATH has no
// DT_RPATH), LD_LIBRARY_PATH, the requester's DT_RUNPATH, /etc/ld.so.cache,
// then the loader's system directories (the last two not when the
// requester has DF_1_NODEFLIB). Each list is split at ':' (LD_LIBRARY_PATH
// also at ';'), dynamic string tokens expanded, an element that expands
// to nothing dropped, an empty one kept as the working directory,
// trailing slashes trimmed, repeats within a list dropped.
func (s *searcher) glibcCandidates(name string, obj *loaded, parents map[*loaded]*loaded, main *loaded) iter.Seq[candidate] {
	return func(yield func(candidate) bool) {
		list := 0
		in := func(dirs []string, how string, owner *loaded) bool {
			list++
			for _, d := range s.glibcDirs(dirs, owner) {
				p := d + name
				if !yield(candidate{path: p, how: how, list: list, origin: s.glibcOrigin(p)}) {
					return false
				}
			}
			return true
		}
		if strings.Contains(name, "/") {
			p := s.expandDST(name, obj)
			if p == "" {
				return
			}
			yield(candidate{path: p, how: "path in DT_NEEDED", list: 1, origin: s.glibcOrigin(p)})
			return
		}
		if len(obj.elf.RunPath) == 0 {
			for p := obj; p != nil; p = parents[p] {
				if len(p.elf.RunPath) == 0 && len(p.elf.RPath) > 0 && !in(p.elf.RPath, "DT_RPATH of "+p.path, p) {
					return
				}
			}
		}
		if s.envPath != nil && !in(s.envPath, "LD_LIBRARY_PATH", main) {
			return
		}
		if !in(obj.elf.RunPath, "DT_RUNPATH of "+obj.path, obj) {
			return
		}
		if obj.elf.NoDefLib {
			yield(candidate{note: "not ld.so.cache nor the system directories: " + obj.path + " has DF_1_NODEFLIB"})
			return
		}
		list++
		if s.cache == nil {
			if !yield(candidate{note: "no usable /etc/ld.so.cache", list: list}) {
				return
			}
		} else if p := s.cache.best(name, s.arch); p != "" {
			if !yield(candidate{path: p, how: "ld.so.cache", note: p + " (ld.so.cache)", list: list, origin: s.glibcOrigin(p)}) {
				return
			}
		}
		in(s.defaults, "system directory", nil)
	}
}

// glibcDirs is fillin_rpath: each element expanded, dropped when that
// leaves nothing, trailing slashes trimmed (but "/"), a slash appended;
// an empty element stays "" (the working directory); repeats dropped.
func (s *searcher) glibcDirs(elems []string, owner *loaded) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range elems {
		if e != "" {
			if e = s.expandDST(e, owner); e == "" {
				continue
			}
			for len(e) > 1 && e[len(e)-1] == '/' {
				e = e[:len(e)-1]
			}
			if e[len(e)-1] != '/' {
				e += "/"
			}
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// expandDST expands glibc's dynamic string tokens in one path: $ORIGIN
// (the directory of owner; the binary's for LD_LIBRARY_PATH and the
// system directories), $PLATFORM (the kernel's AT_PLATFORM for the arch)
// and $LIB (the image loader's first system directory, without its
// leading slash: "lib/x86_64-linux-gnu" on Debian, "lib64" on Fedora),
// each also as ${…}, and only when no letter, digit or '_' follows the
// name. An unknown $NAME stays as written. A token with no value ($ORIGIN
// of nothing) drops the whole path: "" is returned.
func (s *searcher) expandDST(p string, owner *loaded) string {
	if !strings.Contains(p, "$") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '$' {
			b.WriteByte(p[i])
			continue
		}
		rest := p[i+1:]
		matched := false
		for _, tok := range []string{"ORIGIN", "PLATFORM", "LIB"} {
			n := dstLen(rest, tok)
			if n == 0 {
				continue
			}
			val := ""
			switch tok {
			case "ORIGIN":
				if owner != nil {
					val = owner.origin
				}
			case "PLATFORM":
				val = platformDST(s.arch)
			case "LIB":
				val = s.libDST
			}
			if val == "" {
				return ""
			}
			b.WriteString(val)
			i += n
			matched = true
			break
		}
		if !matched {
			b.WriteByte('$')
		}
	}
	return b.String()
}

// dstLen is glibc's is_dst: the length of the token name (braces
// included) at the start of rest, or 0.
func dstLen(rest, name string) int {
	curly := strings.HasPrefix(rest, "{")
	if curly {
		rest = rest[1:]
	}
	if !strings.HasPrefix(rest, name) {
		return 0
	}
	if curly {
		if len(rest) == len(name) || rest[len(name)] != '}' {
			return 0
		}
		return len(name) + 2
	}
	if len(rest) > len(name) {
		c := rest[len(name)]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' {
			return 0
		}
	}
	return len(name)
}

// platformDST is AT_PLATFORM, what $PLATFORM expands to, for the arches
// kiln builds.
func platformDST(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	case "arm":
		return "v7l"
	}
	return goarch
}

// glibcOrigin is the $ORIGIN glibc records for an object found at p: the
// directory part of the path as it was opened (symlinks not resolved),
// made absolute against the working directory.
func (s *searcher) glibcOrigin(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = strings.TrimSuffix(s.proc.cwd, "/") + "/" + p
	}
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

// muslCandidates follows musl's load_library (ldso/dynlink.c, 1.2.x): a
// name with a slash is opened as it is; otherwise LD_LIBRARY_PATH, then
// the run path of the requester and of each object up the chain that
// loaded it (DT_RUNPATH when it has one, else DT_RPATH; a run path with a
// '$' other than $ORIGIN or ${ORIGIN} is ignored), then the system path.
// Each path is split at ':' and newline, empty elements skipped, and
// "dir/name" opened as spelled (a path of 512 bytes or more is skipped).
func (s *searcher) muslCandidates(name string, obj *loaded, parents map[*loaded]*loaded) iter.Seq[candidate] {
	return func(yield func(candidate) bool) {
		in := func(dirs []string, how string) bool {
			for _, d := range dirs {
				p := d + "/" + name
				if len(p) >= 2*255+2 {
					continue
				}
				if !yield(candidate{path: p, how: how, origin: muslOrigin(p)}) {
					return false
				}
			}
			return true
		}
		if strings.Contains(name, "/") {
			yield(candidate{path: name, how: "path in DT_NEEDED", origin: muslOrigin(name)})
			return
		}
		if len(name) > 255 {
			yield(candidate{note: "a name longer than NAME_MAX is never searched"})
			return
		}
		if !in(s.envPath, "LD_LIBRARY_PATH") {
			return
		}
		for p := obj; p != nil; p = parents[p] {
			rp := p.elf.RPath
			if len(p.elf.RunPath) > 0 {
				rp = p.elf.RunPath
			}
			joined, ok := muslRunPath(strings.Join(rp, ":"), p.origin)
			if !ok {
				continue
			}
			if !in(splitMusl(joined), "rpath of "+p.path) {
				return
			}
		}
		how := "musl default path"
		if s.pathNote != muslBuiltIn {
			how = "musl path of " + s.pathNote
		}
		in(s.defaults, how)
	}
}

// muslRunPath is musl's fixup_rpath: every '$' must start $ORIGIN or
// ${ORIGIN} (nothing checks what follows the name), each replaced by the
// origin; any other '$' makes musl ignore the run path.
func muslRunPath(rp, origin string) (string, bool) {
	if !strings.Contains(rp, "$") {
		return rp, true
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(rp, '$')
		if i < 0 {
			b.WriteString(rp)
			return b.String(), true
		}
		b.WriteString(rp[:i])
		switch rest := rp[i:]; {
		case strings.HasPrefix(rest, "$ORIGIN"):
			rp = rest[len("$ORIGIN"):]
		case strings.HasPrefix(rest, "${ORIGIN}"):
			rp = rest[len("${ORIGIN}"):]
		default:
			return "", false
		}
		b.WriteString(origin)
	}
}

// muslOrigin is the $ORIGIN musl uses for a library opened at p: p up to
// its last slash, as spelled ("." when it has none).
func muslOrigin(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}

// open tries one candidate as the image's loader would, as the process:
// what it finds, or whether the search goes on, skips the rest of the
// list, or fails.
func (s *searcher) open(c candidate) (*loaded, outcome, string) {
	e, err := s.proc.open(c.path)
	if err != nil {
		if s.family == "musl" {
			switch err {
			case syscall.ENOENT, syscall.ENOTDIR, syscall.EACCES, syscall.ENAMETOOLONG:
				return nil, tryNext, ""
			}
			return nil, tryFatal, err.Error()
		}
		if err == syscall.ENOENT || err == syscall.EACCES {
			return nil, tryNext, ""
		}
		// glibc abandons the list when the directory exists and the
		// file fails otherwise (a symlink loop).
		dir := path.Dir(c.path)
		if !strings.Contains(c.path, "/") {
			dir = "."
		}
		if d, derr := s.proc.stat(dir); derr == nil && d.Type == TypeDir {
			return nil, tryEndList, ""
		}
		return nil, tryNext, ""
	}
	if e.Type == TypeDir {
		return nil, tryFatal, "a directory (the read fails)"
	}
	data, err := s.proc.content(e)
	if err != nil {
		return nil, tryFatal, err.Error()
	}
	if s.family != "musl" {
		switch skip, why := glibcHeaderCheck(data, s.arch); {
		case skip:
			return nil, tryNext, ""
		case why != "":
			return nil, tryFatal, why
		}
	}
	obj, err := ReadELF(data)
	switch {
	case err != nil:
		return nil, tryFatal, err.Error()
	case obj.Arch != s.arch:
		return nil, tryFatal, fmt.Sprintf("an ELF object for %s, not %s", orUnknown(obj.Arch), s.arch)
	case obj.Type != elf.ET_DYN && obj.Type != elf.ET_EXEC:
		return nil, tryFatal, "not a shared object (" + obj.Type.String() + ")"
	}
	return &loaded{path: e.Path, origin: c.origin, how: c.how, elf: obj}, tryFound, ""
}

// glibcHeaderCheck is glibc's open_verify: a file of the other ELF class
// or another machine is skipped (the search goes on); a file too short,
// without the ELF magic, of the wrong byte order, version, OS ABI or
// padding, not ET_DYN/ET_EXEC or with an odd program header size stops
// the load.
func glibcHeaderCheck(data []byte, arch string) (skip bool, why string) {
	want, ok := archMachine[arch]
	if !ok {
		return false, ""
	}
	class := elf.ELFCLASS64
	if want.bits == 32 {
		class = elf.ELFCLASS32
	}
	ehdr, phent := 64, 56
	if class == elf.ELFCLASS32 {
		ehdr, phent = 52, 32
	}
	if len(data) < ehdr {
		if len(data) >= 5 && string(data[:4]) == elf.ELFMAG && elf.Class(data[elf.EI_CLASS]) != class {
			return true, "" // the other class is checked before the length of its header
		}
		return false, "file too short"
	}
	id := data[:elf.EI_NIDENT]
	switch {
	case string(id[:4]) != elf.ELFMAG:
		return false, "invalid ELF header"
	case elf.Class(id[elf.EI_CLASS]) != class:
		return true, ""
	case elf.Data(id[elf.EI_DATA]) != want.order:
		return false, "ELF file data encoding does not match"
	case elf.Version(id[elf.EI_VERSION]) != elf.EV_CURRENT:
		return false, "ELF file version ident does not match current one"
	case elf.OSABI(id[elf.EI_OSABI]) != elf.ELFOSABI_NONE && elf.OSABI(id[elf.EI_OSABI]) != elf.ELFOSABI_LINUX:
		return false, "ELF file OS ABI invalid"
	case elf.OSABI(id[elf.EI_OSABI]) == elf.ELFOSABI_NONE && id[elf.EI_ABIVERSION] != 0:
		return false, "ELF file ABI version invalid"
	case !allZero(id[elf.EI_PAD:]):
		return false, "nonzero padding in e_ident"
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if want.order == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	typ := elf.Type(bo.Uint16(data[16:]))
	mach := elf.Machine(bo.Uint16(data[18:]))
	version := bo.Uint32(data[20:])
	phentsize := int(bo.Uint16(data[ehdr-10:]))
	switch {
	case version != uint32(elf.EV_CURRENT):
		return false, "ELF file version does not match current one"
	case mach != want.machine:
		return true, ""
	case typ != elf.ET_DYN && typ != elf.ET_EXEC:
		return false, "only ET_DYN and ET_EXEC can be loaded"
	case phentsize != phent:
		return false, "ELF file's phentsize not the expected size"
	}
	return false, ""
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// archMachine is the ELF class, byte order and machine of each GOARCH's
// loader.
var archMachine = map[string]struct {
	bits    int
	order   elf.Data
	machine elf.Machine
}{
	"amd64":   {64, elf.ELFDATA2LSB, elf.EM_X86_64},
	"arm64":   {64, elf.ELFDATA2LSB, elf.EM_AARCH64},
	"386":     {32, elf.ELFDATA2LSB, elf.EM_386},
	"arm":     {32, elf.ELFDATA2LSB, elf.EM_ARM},
	"ppc64le": {64, elf.ELFDATA2LSB, elf.EM_PPC64},
	"s390x":   {64, elf.ELFDATA2MSB, elf.EM_S390},
	"riscv64": {64, elf.ELFDATA2LSB, elf.EM_RISCV},
}
