package targets

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/internal/cache"
)

const glibcRow = "  glibc: {libc: glibc, base: 'oci:b@" + digest + "', platforms: [linux/amd64]}\n"

// stopped is a cancelled context: go list cannot start under it, so an
// ListCgo that succeeds with it was answered from the cache.
func stopped() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// writeFiles writes files a minute old: the cache keys only files whose
// mtime is older than modTimeCutoff.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// newModule writes the module example.com/a with an empty main package.
func newModule(t *testing.T, dir string) {
	t.Helper()
	writeFiles(t, dir, map[string]string{
		"go.mod":  "module example.com/a\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() {}\n",
	})
}

// analyze plans the module in dir with one target and returns the import
// paths of the cgo packages ListCgo finds for its row.
func analyze(t *testing.T, ctx context.Context, dir, targetsYAML string, c *cache.Cache) ([]string, error) {
	t.Helper()
	p, err := planFor(t, dir, ".", targetsYAML, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	l := ListCgo(ctx, p, os.Environ(), c)[p.Rows[0].ID()]
	if l.Err != nil {
		return nil, l.Err
	}
	var names []string
	for _, c := range l.Packages {
		names = append(names, c.ImportPath)
	}
	return names, nil
}

func entries(t *testing.T, c *cache.Cache) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.Dir(), analysisKind))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") { // not the pruning marker
			n++
		}
	}
	return n
}

func TestAnalyzeCacheFollowsTheFiles(t *testing.T) {
	dir := t.TempDir()
	newModule(t, dir)
	c := cache.New(t.TempDir(), "test")
	if got, err := analyze(t, context.Background(), dir, glibcRow, c); err != nil || got != nil {
		t.Fatalf("first analysis: %v, %v; want no cgo packages", got, err)
	}
	if n := entries(t, c); n != 1 {
		t.Fatalf("%d entries after one analysis, want 1", n)
	}
	if got, err := analyze(t, stopped(), dir, glibcRow, c); err != nil || got != nil {
		t.Fatalf("unchanged module: %v, %v; want the stored answer", got, err)
	}

	// A new file is a new key: the stored answer, now wrong, is not used.
	writeFiles(t, dir, map[string]string{"c.go": "package main\n\nimport \"C\"\n"})
	if _, err := analyze(t, stopped(), dir, glibcRow, c); err == nil {
		t.Fatal("a cgo file was added, yet the analysis came from the cache")
	}
	if got, err := analyze(t, context.Background(), dir, glibcRow, c); err != nil || !slices.Equal(got, []string{"example.com/a"}) {
		t.Fatalf("after adding a cgo file: %v, %v; want example.com/a", got, err)
	}
}

func TestAnalyzeCacheFollowsTheTags(t *testing.T) {
	dir := t.TempDir()
	newModule(t, dir)
	writeFiles(t, dir, map[string]string{"c.go": "//go:build withc\n\npackage main\n\nimport \"C\"\n"})
	c := cache.New(t.TempDir(), "test")
	if got, err := analyze(t, context.Background(), dir, glibcRow, c); err != nil || got != nil {
		t.Fatalf("without tags: %v, %v; want no cgo packages", got, err)
	}
	tagged := "  glibc: {libc: glibc, base: 'oci:b@" + digest + "', platforms: [linux/amd64], tags: [withc]}\n"
	if _, err := analyze(t, stopped(), dir, tagged, c); err == nil {
		t.Fatal("the tags changed, yet the analysis came from the cache")
	}
	if got, err := analyze(t, context.Background(), dir, tagged, c); err != nil || !slices.Equal(got, []string{"example.com/a"}) {
		t.Fatalf("with tags: %v, %v; want example.com/a", got, err)
	}
}

// Where packages can come from files the key does not stamp, the analysis
// runs every time.
func TestAnalyzeCacheStoresNothingItCannotKey(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // under a parent of the module a/
	}{
		{name: "go.work in a parent", files: map[string]string{"go.work": "go 1.22\n\nuse ./a\n"}},
		{name: "replace by a directory", files: map[string]string{
			"a/go.mod":  "module example.com/a\n\ngo 1.22\n\nrequire example.com/b v0.0.0\n\nreplace example.com/b => ../b\n",
			"a/main.go": "package main\n\nimport _ \"example.com/b\"\n\nfunc main() {}\n",
			"b/go.mod":  "module example.com/b\n\ngo 1.22\n",
			"b/b.go":    "package b\n",
		}},
		{name: "package in a skipped directory", files: map[string]string{
			"a/main.go": "package main\n\nimport _ \"example.com/a/_x\"\n\nfunc main() {}\n",
			"a/_x/x.go": "package x\n\nimport \"C\"\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a")
			newModule(t, dir)
			writeFiles(t, parent, tt.files)
			c := cache.New(t.TempDir(), "test")
			if _, err := analyze(t, context.Background(), dir, glibcRow, c); err != nil {
				t.Fatal(err)
			}
			if n := entries(t, c); n != 0 {
				t.Errorf("%d entries stored, want none", n)
			}
		})
	}
}

// An answer that rests on a package go list could not load (go list -e
// reports a module that did not download as the package's Error) is not
// stored; one whose cgo package does not load without cgo is.
func TestAnalyzeCacheStoresOnlyLoadedAnswers(t *testing.T) {
	t.Run("cgo package that fails without cgo", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"go.mod":  "module example.com/a\n\ngo 1.22\n",
			"main.go": "package main\n\nimport _ \"example.com/a/c\"\n\nfunc main() {}\n",
			"c/c.go":  "package c\n\nimport \"C\"\n",
		})
		c := cache.New(t.TempDir(), "test")
		if got, err := analyze(t, context.Background(), dir, glibcRow, c); err != nil || !slices.Equal(got, []string{"example.com/a/c"}) {
			t.Fatalf("%v, %v; want example.com/a/c", got, err)
		}
		if n := entries(t, c); n != 1 {
			t.Errorf("%d entries stored, want 1", n)
		}
	})
	t.Run("module that did not download", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"go.mod":  "module example.com/a\n\ngo 1.22\n\nrequire example.com/missing v1.0.0\n",
			"main.go": "package main\n\nimport _ \"example.com/missing\"\n\nfunc main() {}\n",
		})
		c := cache.New(t.TempDir(), "test")
		offline := "  glibc: {libc: glibc, base: 'oci:b@" + digest + "', platforms: [linux/amd64], env: [GOPROXY=off, GOFLAGS=-mod=mod, GOMODCACHE=" + t.TempDir() + "]}\n"
		if _, err := analyze(t, context.Background(), dir, offline, c); err != nil {
			t.Fatal(err)
		}
		if n := entries(t, c); n != 0 {
			t.Errorf("%d entries stored for an analysis that could not load example.com/missing, want none", n)
		}
	})
}

// A file written just now may be rewritten within the mtime granularity
// without changing its stamp, so its analysis is not stored.
func TestAnalyzeCacheWaitsForFreshFilesToSettle(t *testing.T) {
	dir := t.TempDir()
	newModule(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := cache.New(t.TempDir(), "test")
	if got, err := analyze(t, context.Background(), dir, glibcRow, c); err != nil || got != nil {
		t.Fatalf("%v, %v; want no cgo packages", got, err)
	}
	if n := entries(t, c); n != 0 {
		t.Errorf("%d entries stored for a tree with a file modified just now, want none", n)
	}
}

func TestAnalyzeWithoutCache(t *testing.T) {
	dir := t.TempDir()
	newModule(t, dir)
	writeFiles(t, dir, map[string]string{"c.go": "package main\n\nimport \"C\"\n"})
	for range 2 {
		if got, err := analyze(t, context.Background(), dir, glibcRow, nil); err != nil || !slices.Equal(got, []string{"example.com/a"}) {
			t.Fatalf("%v, %v; want example.com/a", got, err)
		}
	}
	if _, err := analyze(t, stopped(), dir, glibcRow, nil); err == nil {
		t.Fatal("a nil cache answered")
	}
}

// BenchmarkModuleTree measures what a cache hit costs on top of the lookup:
// the walk of examples/sqlite and the key.
func BenchmarkModuleTree(b *testing.B) {
	dir, _ := filepath.Abs("../examples/sqlite")
	c := cache.New(b.TempDir(), "bench")
	env := Row{Target: &Target{}, Platform: Platform{OS: "linux", Arch: "amd64"}}.BuildEnv(os.Environ())
	for b.Loop() {
		tree := func() *moduleTree { return readModuleTree(dir) }
		if analysisKey(c, tree, dir, ".", nil, env) == "" {
			b.Fatal("examples/sqlite is not cacheable")
		}
	}
}
