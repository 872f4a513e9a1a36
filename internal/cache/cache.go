// Package cache keeps the results of kiln's own pure computations between
// runs, the way go's build cache keeps compiled packages: an entry is found
// only by a key that hashes every input of the computation and kiln's own
// build ID, so a new kiln or a changed input never sees an old answer.
//
// It is the one cache mechanism of kiln: every kind of entry lives under
// <user cache dir>/kiln/<kind>/ — small JSON records (Get, Put), files too
// large for a record (File, PutFile), content-addressed documents (Blob,
// PutBlob) and directories a tool fills itself (DirEntry: the row binaries
// go build keeps up to date, a builder image's GOCACHE and GOMODCACHE).
// Files are written atomically (renameio); an entry not used for MaxAge
// (or its kind's shorter age, see kindAge) is removed. A nil *Cache is a
// valid, disabled cache: Get misses, Put does nothing and DirEntry gives no
// directory (kiln release --no-cache, or no cache directory).
package cache

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/renameio"
)

// maxEntry bounds what Get reads: entries are small records, and a cache
// directory is only as trustworthy as the user's home.
const maxEntry = 16 << 20

// MaxAge is how long an unused entry of any kiln cache is kept.
const MaxAge = 14 * 24 * time.Hour

// kindAge shortens MaxAge for kinds whose entries are large and cheap to
// make again: a row binary only spares go build a relink, so a few days of
// releases is what it is for.
var kindAge = map[string]time.Duration{"bin": 3 * 24 * time.Hour}

// Cache is a directory of entries and the salt every key is mixed with.
type Cache struct {
	dir  string
	salt string

	mu     sync.Mutex
	pruned map[string]bool // kinds pruned by this process
}

// Open returns the user's kiln cache, salted with the running executable's
// Go build ID, or nil (disabled) when there is no cache directory or the
// build ID cannot be read: without it an upgraded kiln could read the
// answers of the old one.
func Open() *Cache {
	base, err := os.UserCacheDir()
	if err != nil {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	id := GoBuildID(exe)
	if id == "" {
		return nil
	}
	return New(filepath.Join(base, "kiln"), id)
}

// New returns a cache rooted at dir whose keys are mixed with salt.
func New(dir, salt string) *Cache {
	return &Cache{dir: dir, salt: salt, pruned: map[string]bool{}}
}

// Dir is the cache's root directory ("" for a disabled cache).
func (c *Cache) Dir() string {
	if c == nil {
		return ""
	}
	return c.dir
}

// Key hashes the parts, in order and unambiguously, with the cache's salt.
func (c *Cache) Key(parts ...any) string {
	if c == nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "%q", c.salt)
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil { // a programming error: such a key must never hit
			b = fmt.Appendf(nil, "unencodable %T %p", p, &p)
		}
		fmt.Fprintf(h, "\x00%d:%s", len(b), b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *Cache) path(kind, key string) string {
	return filepath.Join(c.dir, kind, key+".json")
}

// Get decodes the entry kind/key into v and reports whether it was there and
// whole. A found entry is marked used, so pruning keeps it.
func (c *Cache) Get(kind, key string, v any) bool {
	if c == nil || key == "" {
		return false
	}
	p := c.path(kind, key)
	data, ok := readEntry(p)
	if !ok {
		return false
	}
	var e entry
	if json.Unmarshal(data, &e) != nil || e.Key != key || json.Unmarshal(e.Value, v) != nil {
		return false
	}
	touch(p)
	return true
}

// readEntry reads an entry of at most maxEntry bytes.
func readEntry(p string) ([]byte, bool) {
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEntry+1))
	return data, err == nil && len(data) <= maxEntry
}

// touch marks the entry at p used, so pruning keeps it.
func touch(p string) {
	now := time.Now()
	_ = os.Chtimes(p, now, now)
}

// File is where the entry name of kind is kept, for entries too large to
// be JSON values (a compressed layer); "" for a disabled cache. Reading it
// marks it used.
func (c *Cache) File(kind, name string) string {
	if c == nil {
		return ""
	}
	p := filepath.Join(c.dir, kind, name)
	touch(p)
	return p
}

// PutFile stores data as the entry name of kind, atomically.
func (c *Cache) PutFile(kind, name string, data []byte) {
	if c != nil {
		c.write(kind, filepath.Join(c.dir, kind, name), data)
	}
}

// Put stores v as the entry kind/key. Failures are ignored: a cache that
// cannot be written only costs the next run the computation.
func (c *Cache) Put(kind, key string, v any) {
	if c == nil || key == "" {
		return
	}
	val, err := json.Marshal(v)
	if err != nil {
		return
	}
	data, err := json.Marshal(entry{Key: key, Value: val})
	if err != nil {
		return
	}
	c.write(kind, c.path(kind, key), data)
}

// write puts data at p (in the directory of kind) atomically.
func (c *Cache) write(kind, p string, data []byte) {
	if os.MkdirAll(filepath.Join(c.dir, kind), 0o755) != nil {
		return
	}
	c.prune(kind)
	_ = renameio.WriteFile(p, data)
}

// DirEntry returns the directory entry name of kind, created if needed and
// marked used, for a tool that fills it itself; "" for a disabled cache or
// when it cannot be created. Entries of the kind unused for its age are
// pruned.
func (c *Cache) DirEntry(kind, name string) string {
	if c == nil || name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return ""
	}
	p := filepath.Join(c.dir, kind, name)
	if os.MkdirAll(p, 0o755) != nil {
		return ""
	}
	c.prune(kind)
	touch(p)
	return p
}

// Blob returns the bytes stored under their sha256 digest ("sha256:<hex>"),
// checked against it: content-addressed entries need no salt and cannot be
// stale, only damaged, which reads as a miss. Blobs are small documents
// (manifests, configs); larger ones are not kept.
func (c *Cache) Blob(digest string) ([]byte, bool) {
	p, ok := c.blobPath(digest)
	if !ok {
		return nil, false
	}
	data, ok := readEntry(p)
	if !ok {
		return nil, false
	}
	if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return nil, false
	}
	touch(p)
	return data, true
}

// PutBlob stores data under its sha256 digest.
func (c *Cache) PutBlob(data []byte) {
	sum := sha256.Sum256(data)
	p, ok := c.blobPath("sha256:" + hex.EncodeToString(sum[:]))
	if !ok || len(data) > maxEntry {
		return
	}
	if _, err := os.Stat(p); err == nil {
		return
	}
	c.write("blobs", p, data)
}

func (c *Cache) blobPath(digest string) (string, bool) {
	hexPart, ok := strings.CutPrefix(digest, "sha256:")
	if c == nil || !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return "", false
	}
	return filepath.Join(c.dir, "blobs", hexPart), true
}

// entry is the stored form; the key inside guards against a file renamed
// or copied into the wrong place.
type entry struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// prune removes, once per process and kind, the entries of kind not used
// for MaxAge.
func (c *Cache) prune(kind string) {
	c.mu.Lock()
	done := c.pruned[kind]
	c.pruned[kind] = true
	c.mu.Unlock()
	if !done {
		age := MaxAge
		if a, ok := kindAge[kind]; ok {
			age = a
		}
		pruneDir(filepath.Join(c.dir, kind), age)
	}
}

// pruneDir removes the entries of dir (files or whole directories) whose
// modification time is older than age. Users of an entry mark it used by
// touching it. A directory is looked through at most once an hour (the time
// of the last look is the mtime of its .pruned file): reading a thousand
// entries is a cost a warm release should not pay every time.
func pruneDir(dir string, age time.Duration) {
	marker := filepath.Join(dir, ".pruned")
	now := time.Now()
	if fi, err := os.Stat(marker); err == nil && now.Sub(fi.ModTime()) < time.Hour {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	if f, err := os.Create(marker); err == nil {
		f.Close()
	}
	cutoff := now.Add(-age)
	for _, e := range ents {
		if e.Name() == ".pruned" {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			removeAll(filepath.Join(dir, e.Name()))
		}
	}
}

// removeAll removes p, also when a tool left read-only directories in it
// (the go command's module cache does).
func removeAll(p string) {
	if os.RemoveAll(p) == nil {
		return
	}
	_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(p)
}

// GoBuildID reads the Go build ID of the ELF executable at path from its
// note, or returns "". The go command derives it from the binary's inputs
// and, in its last part, its content; it is how go build itself decides a
// binary is up to date.
func GoBuildID(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil || s.Size > 4096 {
		return ""
	}
	note, err := s.Data()
	if err != nil || len(note) < 16 {
		return ""
	}
	// namesz, descsz, type, then "Go\x00\x00" and the ID.
	descsz := int(uint32(note[4]) | uint32(note[5])<<8 | uint32(note[6])<<16 | uint32(note[7])<<24)
	if !bytes.Equal(note[12:16], []byte("Go\x00\x00")) || 16+descsz > len(note) {
		return ""
	}
	return string(note[16 : 16+descsz])
}
