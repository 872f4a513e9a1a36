package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGetPut(t *testing.T) {
	c := New(t.TempDir(), "kiln-a")
	type rec struct {
		A string
		N int
	}
	k := c.Key("x", 1, []string{"a", "b"})
	var got rec
	if c.Get("k", k, &got) {
		t.Fatal("hit on an empty cache")
	}
	c.Put("k", k, rec{"v", 3})
	if !c.Get("k", k, &got) || got != (rec{"v", 3}) {
		t.Fatalf("Get = %+v", got)
	}
	// Every part and the salt are in the key, and parts do not run together.
	for _, other := range []string{c.Key("x", 1, []string{"a", "bb"}), c.Key("x", 1, []string{"ab"}), New(c.dir, "kiln-b").Key("x", 1, []string{"a", "b"})} {
		if other == k {
			t.Fatalf("different inputs share key %s", k)
		}
	}
	// A damaged or misplaced entry is a miss, not an answer.
	p := c.path("k", k)
	if err := os.WriteFile(p, []byte(`{"key":"other","value":{"A":"w"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if c.Get("k", k, &got) {
		t.Fatal("an entry whose key does not match was used")
	}
	if err := os.WriteFile(p, []byte(`{"key":"`+k+`","val`), 0o644); err != nil {
		t.Fatal(err)
	}
	if c.Get("k", k, &got) {
		t.Fatal("a truncated entry was used")
	}
}

func TestNilCacheIsDisabled(t *testing.T) {
	var c *Cache
	c.Put("k", c.Key("x"), 1)
	var v int
	if c.Get("k", c.Key("x"), &v) || c.Dir() != "" {
		t.Fatal("a nil cache stored something")
	}
}

func TestPruneKeepsUsedEntries(t *testing.T) {
	c := New(t.TempDir(), "s")
	old, used := c.Key("old"), c.Key("used")
	c.Put("k", old, 1)
	c.Put("k", used, 2)
	long := time.Now().Add(-MaxAge - time.Hour)
	for _, k := range []string{old, used} {
		if err := os.Chtimes(c.path("k", k), long, long); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if !c.Get("k", used, &v) { // marks it used
		t.Fatal("miss")
	}
	New(c.dir, "s").Put("k", c.Key("new"), 3) // a new process prunes once
	if _, err := os.Stat(c.path("k", old)); err != nil {
		t.Fatalf("pruned within the hour of the last look: %v", err)
	}
	if err := os.Chtimes(filepath.Join(c.dir, "k", ".pruned"), long, long); err != nil {
		t.Fatal(err)
	}
	New(c.dir, "s").Put("k", c.Key("newer"), 4)
	if _, err := os.Stat(c.path("k", old)); !os.IsNotExist(err) {
		t.Fatalf("unused entry kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "k", used+".json")); err != nil {
		t.Fatalf("used entry pruned: %v", err)
	}
}

func TestGoBuildID(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command("go", "tool", "buildid", exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := GoBuildID(exe); got != strings.TrimSpace(string(want)) {
		t.Fatalf("GoBuildID = %q, go tool buildid says %q", got, want)
	}
	if got := GoBuildID("cache.go"); got != "" {
		t.Fatalf("GoBuildID of a non-ELF file = %q", got)
	}
}

func TestBlobsAreCheckedAgainstTheirDigest(t *testing.T) {
	c := New(t.TempDir(), "s")
	doc := []byte(`{"schemaVersion":2}`)
	sum := sha256.Sum256(doc)
	d := "sha256:" + hex.EncodeToString(sum[:])
	if _, ok := c.Blob(d); ok {
		t.Fatal("hit on an empty cache")
	}
	c.PutBlob(doc)
	if got, ok := c.Blob(d); !ok || string(got) != string(doc) {
		t.Fatalf("Blob = %q, %v", got, ok)
	}
	p, _ := c.blobPath(d)
	if err := os.WriteFile(p, []byte(`{"schemaVersion":3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Blob(d); ok {
		t.Fatal("a blob that does not match its digest was returned")
	}
	for _, bad := range []string{"sha256:../../etc/passwd", "sha512:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64)} {
		if _, ok := c.Blob(bad); ok {
			t.Errorf("Blob(%q) hit", bad)
		}
	}
}

// A directory entry is made, marked used and pruned like any other entry,
// at its kind's age, even when a tool left read-only directories in it (go's
// module cache does); a disabled cache gives none.
func TestDirEntries(t *testing.T) {
	var off *Cache
	if d := off.DirEntry("bin", "x"); d != "" {
		t.Fatalf("a disabled cache gave the directory %s", d)
	}
	c := New(t.TempDir(), "s")
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if d := c.DirEntry("bin", bad); d != "" {
			t.Errorf("DirEntry(%q) = %s, want none", bad, d)
		}
	}
	stale := c.DirEntry("bin", "stale")
	kept := c.DirEntry("builder", "kept")
	if stale == "" || kept == "" {
		t.Fatal("no directory entry")
	}
	ro := filepath.Join(stale, "mod", "example.com@v1")
	if err := os.MkdirAll(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "go.mod"), []byte("module x\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	// Four days unused: past a row binary's age, within a builder cache's.
	long := time.Now().Add(-4 * 24 * time.Hour)
	for _, p := range []string{stale, kept, filepath.Join(c.dir, "bin", ".pruned"), filepath.Join(c.dir, "builder", ".pruned")} {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	again := New(c.dir, "s")
	again.DirEntry("bin", "fresh")
	again.DirEntry("builder", "fresh")
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a row binary unused for 4 days was kept: %v", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a builder cache unused for 4 days was pruned: %v", err)
	}
}
