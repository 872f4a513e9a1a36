package targets

// The cgo analysis runs `go list` twice per tags × platform, yet its answer
// is a function of inputs that can be stat'ed in a millisecond, so ListCgo
// keeps it in kiln's cache. The key holds everything that can change what go
// list says about ImportPath, Standard, GoFiles, CgoFiles and Error:
//
//   - the module directory, the main package, the tags, the row's build
//     environment exactly as go list gets it, and both CGO_ENABLED values:
//     together they decide which files build constraints select;
//   - the go command (the path, size, mode and mtime of the binary exec runs,
//     and of the one on the row's PATH if that differs) and GOROOT: a new
//     toolchain brings new release tags, a new standard library and new rules
//     for reading go.mod;
//   - the user's go env file and GOROOT/go.env: they set GOFLAGS,
//     GOEXPERIMENT and other variables the environment leaves out;
//   - the module tree: the path, size, mode and mtime of every file, since a
//     new or edited file can add an import or a cgo file, and the bytes of
//     go.mod and go.sum, which fix every dependency outside the tree by
//     version and hash. vendor/ is in the tree.
//
// A file modified in the last two seconds makes the tree uncacheable, as in
// the go command's own file hash cache: a file rewritten within the
// filesystem's mtime granularity (a kernel tick, a second or two on some
// filesystems) with the same size would keep its stamp.
//
// What the key cannot see is not cached: a go.work, a replace by a local
// directory, -modfile, GOPATH mode, a symlink to a directory, a tree of more
// than maxModuleFiles files, and an answer that names a package of the module
// in a directory the walk skips ("." or "_" prefixes, testdata: the go command
// still builds such a package when it is imported) or a list of .go files.

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/kilnbuild/kiln/internal/cache"
)

const (
	analysisKind = "cgo-analysis"
	// maxModuleFiles bounds the walk: stat'ing a tree this big every run
	// would cost about what go list does.
	maxModuleFiles = 20000
	// modTimeCutoff is how old a file's mtime must be for its stamp to
	// identify its content (cmd/go/internal/cache uses the same).
	modTimeCutoff = 2 * time.Second
)

// moduleTree is the state of the main module's files.
type moduleTree struct {
	path   string // the module path, from go.mod
	digest string // of every file's stamp and of go.mod and go.sum
}

var errUncacheable = errors.New("not cacheable")

// readModuleTree stamps the module that contains dir, or returns nil when an
// analysis of it must not be cached.
func readModuleTree(dir string) *moduleTree {
	root, err := filepath.EvalSymlinks(dir) // WalkDir does not enter a symlinked root
	if err != nil {
		return nil
	}
	for !isFile(filepath.Join(root, "go.mod")) {
		parent := filepath.Dir(root)
		if parent == root {
			return nil
		}
		root = parent
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil
	}
	f, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil || f.Module == nil {
		return nil
	}
	for _, r := range f.Replace {
		if r.New.Version == "" { // a directory, outside the tree or not
			return nil
		}
	}
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "%q\ngo.mod %q\ngo.sum %q\n", root, gomod, gosum)
	files := 0
	settled := time.Now().Add(-modTimeCutoff)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (skippedDir(d.Name()) || isFile(filepath.Join(path, "go.mod"))) {
				return filepath.SkipDir // not a package of this module, or a nested module
			}
			return nil
		}
		if files++; files > maxModuleFiles {
			return errUncacheable
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if info.Mode()&fs.ModeSymlink != 0 {
			link, _ := os.Readlink(path)
			fmt.Fprintf(h, "%q -> %q\n", rel, link)
			target, err := os.Stat(path)
			switch {
			case err != nil:
				return nil // dangling: its link text is stamped
			case target.IsDir():
				return errUncacheable // its files are not walked
			}
			info = target
		}
		if info.ModTime().After(settled) {
			return errUncacheable // it may change again without changing its stamp
		}
		fmt.Fprintf(h, "%q %d %v %d\n", rel, info.Size(), info.Mode(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return nil
	}
	return &moduleTree{path: f.Module.Mod.Path, digest: hex.EncodeToString(h.Sum(nil))}
}

// skippedDir reports whether the walk skips a directory: the go command
// ignores these in patterns, and they often hold large fixtures or VCS data.
func skippedDir(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata"
}

// covers reports whether the tree's stamps cover every package of the module
// in listed: a package in a skipped directory still builds when imported.
func (m *moduleTree) covers(listed []string) bool {
	for _, p := range listed {
		if p == "command-line-arguments" { // main named .go files, maybe outside the tree
			return false
		}
		rel, ok := strings.CutPrefix(p, m.path+"/")
		if !ok {
			continue
		}
		for elem := range strings.SplitSeq(rel, "/") {
			if skippedDir(elem) {
				return false
			}
		}
	}
	return true
}

// analysisKey returns the cache key of the cgo analysis of main in dir, or
// "" when that analysis must not be cached. tree is called last, so that
// the walk of the module is skipped when the cheaper checks already say no.
func analysisKey(c *cache.Cache, tree func() *moduleTree, dir, main string, tags, env []string) string {
	if c == nil {
		return ""
	}
	g, ok := readGoConfig(env)
	if !ok {
		return ""
	}
	switch gowork := g.setting(env, "GOWORK"); {
	case gowork != "off" && (gowork != "" || findUp(dir, "go.work")),
		g.setting(env, "GO111MODULE") == "off",
		strings.Contains(g.setting(env, "GOFLAGS"), "-modfile"):
		return ""
	}
	t := tree()
	if t == nil {
		return ""
	}
	return c.Key("cgo-analysis/1", dir, main, tags, env, []string{"CGO_ENABLED=1", "CGO_ENABLED=0"}, g, t.digest)
}

// cachedAnalysis is analyzeCgo through c; only answers from packages that
// all loaded, and that tree covers, are stored.
func cachedAnalysis(ctx context.Context, c *cache.Cache, tree func() *moduleTree, dir, main string, tags, env []string) ([]CgoPackage, error) {
	key := analysisKey(c, tree, dir, main, tags, env)
	var pkgs []CgoPackage
	if c.Get(analysisKind, key, &pkgs) {
		return pkgs, nil
	}
	pkgs, l, err := analyzeCgo(ctx, dir, main, tags, env)
	if err == nil && key != "" && !l.failed && tree().covers(l.paths) {
		c.Put(analysisKind, key, pkgs)
	}
	return pkgs, err
}

// goConfig is the go command and the configuration it reads besides the
// environment.
type goConfig struct {
	Binaries []fileStamp
	GOROOT   string
	UserFile string // the user's go env file
	User     string // its content
	RootEnv  string // the content of GOROOT/go.env
}

// fileStamp identifies a file's content as cheaply as the go command's own
// caches do.
type fileStamp struct {
	Path, Real  string
	Size, MTime int64
	Mode        fs.FileMode
}

// readGoConfig stamps the go command that exec runs (found on kiln's own
// PATH) and, when it differs, the one on the row's PATH, and reads the env
// files that go command reads with env.
func readGoConfig(env []string) (*goConfig, bool) {
	g := &goConfig{}
	for _, pathList := range []string{os.Getenv("PATH"), envValue(env, "PATH")} {
		p, err := lookGo(pathList)
		if err != nil {
			return nil, false
		}
		if len(g.Binaries) > 0 && g.Binaries[0].Path == p {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, false
		}
		info, err := os.Stat(real)
		if err != nil {
			return nil, false
		}
		g.Binaries = append(g.Binaries, fileStamp{Path: p, Real: real, Size: info.Size(), MTime: info.ModTime().UnixNano(), Mode: info.Mode()})
	}
	var ok bool
	g.UserFile = goEnvFile(env)
	if g.User, ok = readOptional(g.UserFile); !ok {
		return nil, false
	}
	// Without GOROOT set, the go command finds it above its own bin/.
	g.GOROOT = cmp.Or(envValue(env, "GOROOT"), envFileValue(g.User, "GOROOT"), filepath.Dir(filepath.Dir(g.Binaries[0].Real)))
	if g.RootEnv, ok = readOptional(filepath.Join(g.GOROOT, "go.env")); !ok {
		return nil, false
	}
	return g, true
}

// setting returns the go command's value of key: from the environment, then
// the user's env file, then GOROOT's.
func (g *goConfig) setting(env []string, key string) string {
	return cmp.Or(envValue(env, key), envFileValue(g.User, key), envFileValue(g.RootEnv, key))
}

// lookGo finds go on pathList as exec.LookPath finds it on $PATH, refusing
// a relative result as exec does.
func lookGo(pathList string) (string, error) {
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, "go")
		if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			continue
		}
		if !filepath.IsAbs(p) {
			return "", exec.ErrDot
		}
		return p, nil
	}
	return "", exec.ErrNotFound
}

// goEnvFile returns the go env file the go command reads with env: $GOENV,
// or go/env in the user config directory as env defines it ("" for none).
func goEnvFile(env []string) string {
	switch v := envValue(env, "GOENV"); v {
	case "off":
		return ""
	case "":
	default:
		return v
	}
	var dir string
	switch runtime.GOOS {
	case "windows", "plan9": // from variables BuildEnv does not pass; kiln's own is the best guess
		dir, _ = os.UserConfigDir()
	case "darwin", "ios":
		if home := envValue(env, "HOME"); home != "" {
			dir = filepath.Join(home, "Library", "Application Support")
		}
	default:
		if x := envValue(env, "XDG_CONFIG_HOME"); filepath.IsAbs(x) {
			dir = x
		} else if home := envValue(env, "HOME"); home != "" {
			dir = filepath.Join(home, ".config")
		}
	}
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "go", "env")
}

// readOptional reads a file that may be absent ("" names none).
func readOptional(name string) (string, bool) {
	if name == "" {
		return "", true
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true
	}
	return string(b), err == nil
}

// envFileValue returns key's value in the content of a go env file, read
// as the go command reads it: the last line "KEY=value" wins.
func envFileValue(content, key string) string {
	var v string
	for line := range strings.Lines(content) {
		if val, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), key+"="); ok {
			v = val
		}
	}
	return v
}

// envValue returns key's value in env, the last one winning as in exec.
func envValue(env []string, key string) string {
	var v string
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, key+"="); ok {
			v = val
		}
	}
	return v
}

// findUp reports whether name is a file in dir or one of its parents.
func findUp(dir, name string) bool {
	for {
		if isFile(filepath.Join(dir, name)) {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

func isFile(name string) bool {
	info, err := os.Stat(name)
	return err == nil && !info.IsDir()
}
