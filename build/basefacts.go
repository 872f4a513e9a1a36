package build

import (
	"os"
	"path"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// What the decision needs from a base platform image's files is a pure
// function of its digest, kept in the cache between runs so that a warm
// release does not read the base's layers before compiling.

// inspectBase returns what the files of a base platform image say (its
// loaders, its glibc), from c when recorded, else from its files.
func inspectBase(c *cache.Cache, files *baseFiles, img v1.Image, d v1.Hash, pl targets.Platform) (*targets.BaseFiles, error) {
	var facts targets.BaseFiles
	key := c.Key("base-facts/v1", d, pl)
	if d != (v1.Hash{}) && c.Get("base-facts", key, &facts) {
		return &facts, nil
	}
	fsys, err := files.get(img, d)
	if err != nil {
		return nil, err
	}
	facts.Loaders = map[string]bool{}
	for _, libc := range []targets.Libc{targets.LibcGlibc, targets.LibcMusl} {
		if l := targets.Loader(libc, pl); l != "" {
			_, e, err := fsys.Resolve(l)
			facts.Loaders[l] = err == nil && e.Type == verify.TypeFile
		}
	}
	facts.Glibc, facts.GlibcVersion = baseGlibc(targets.Loader(targets.LibcGlibc, pl), fsys)
	if d != (v1.Hash{}) {
		c.Put("base-facts", key, facts)
	}
	return &facts, nil
}

// baseFiles flattens each base platform image once per release, for the
// base facts and for every row verified on it.
type baseFiles struct {
	mu sync.Mutex
	m  map[v1.Hash]*flattened
}

type flattened struct {
	once sync.Once
	fs   *verify.FS
	err  error
}

// get returns the files of img, whose manifest digest is d. Callers that
// add layers must Clone the result.
func (b *baseFiles) get(img v1.Image, d v1.Hash) (*verify.FS, error) {
	b.mu.Lock()
	if b.m == nil {
		b.m = map[v1.Hash]*flattened{}
	}
	f := b.m[d]
	if f == nil {
		f = &flattened{}
		b.m[d] = f
	}
	b.mu.Unlock()
	f.once.Do(func() { f.fs, f.err = verify.Flatten(img, verify.Limits{}) })
	return f.fs, f.err
}

// baseGlibc finds the base's libc.so.6 next to the glibc loader (or in the
// usual library directories) and returns its path and newest GLIBC_ version.
func baseGlibc(loader string, fsys *verify.FS) (string, string) {
	var dirs []string
	if real, _, err := fsys.Resolve(loader); err == nil {
		dirs = append(dirs, path.Dir(real))
	}
	dirs = append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
	for _, d := range dirs {
		p := path.Join(d, "libc.so.6")
		data, err := fsys.ReadFile(p)
		if err != nil {
			continue
		}
		if v := glibcVersion(data); v != "" {
			return p, v
		}
	}
	return "", ""
}

// toolchainGlibc reads the newest GLIBC_ version each of the toolchains'
// libc.so.6 files defines (Facts.Glibc).
func toolchainGlibc(paths []string) map[string]string {
	out := map[string]string{}
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			out[p] = glibcVersion(data)
		}
	}
	return out
}

// glibcVersion is the newest GLIBC_ version a libc.so.6 defines, or "".
func glibcVersion(libc []byte) string {
	e, err := verify.ReadELF(libc)
	if err != nil {
		return ""
	}
	return verify.MaxGlibcVersion(e.VersionDefs)
}
