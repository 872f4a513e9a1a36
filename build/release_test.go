package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

func TestBinaryLayerIsDeterministic(t *testing.T) {
	bin := []byte("\x7fELF not really a binary")
	mtime := time.Unix(1700000000, 0)
	a, err := binaryLayer(nil, bin, "/usr/local/bin/app", mtime, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := binaryLayer(nil, append([]byte(nil), bin...), "/usr/local/bin/app", mtime, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same input, different layer digests: %s %s", da, db)
	}
	c, _ := binaryLayer(nil, bin, "/usr/local/bin/app", time.Unix(0, 0), types.OCILayer)
	if dc, _ := c.Digest(); dc == da {
		t.Error("the mtime does not reach the layer")
	}

	rc, err := a.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: uid %d gid %d uname %q gname %q mtime %s", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		wantMode := int64(0o755)
		if h.Typeflag == tar.TypeReg {
			wantMode = 0o555
		}
		if h.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, wantMode)
		}
	}
	if want := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/app"}; !slices.Equal(names, want) {
		t.Errorf("entries = %q, want %q", names, want)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "TZ=UTC"}, []string{"TZ=Europe/Paris", "SSL_CERT_FILE=/certs.pem"})
	if want := []string{"PATH=/bin", "TZ=Europe/Paris", "SSL_CERT_FILE=/certs.pem"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}

// fixture is a tiny Go module, a layout base and a plan around them.
type fixture struct {
	dir       string
	registry  string // host:port of an in-process registry
	uploads   atomic.Int64
	baseReads atomic.Int64 // manifest requests to bases/*
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	write := func(rel, content string) {
		p := filepath.Join(f.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app/go.mod", "module example.com/app\n\ngo 1.22\n")
	write("app/main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"app ok\") }\n")
	write("app/broken.go", "//go:build kilnbroken\n\npackage main\n\nfunc broken( {\n")

	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
			f.uploads.Add(1)
		}
		if strings.HasPrefix(r.URL.Path, "/v2/bases/") && strings.Contains(r.URL.Path, "/manifests/") {
			f.baseReads.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.registry = strings.TrimPrefix(srv.URL, "http://")

	// A two-platform base in an OCI layout, as oci:<path>:base@<digest>.
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		cf.Config.Cmd = []string{"/bin/sh"}
		cf.Config.Env = []string{"PATH=/bin"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	lp, err := layout.Write(filepath.Join(f.dir, "bases"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{AnnotationRefName: "base"})); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) baseDigest(t *testing.T) string {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(filepath.Join(f.dir, "bases"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Manifests[0].Digest.String()
}

// planned is a config of the fixture app and the rows selected from it.
type planned struct {
	cfg *targets.Config
	sel targets.Selection
}

// output is the release's output directory.
func (c planned) output() string { return filepath.Join(filepath.Dir(c.cfg.File), c.cfg.Image.Output) }

// plan decodes a config for the fixture app with the given targets section.
func (f *fixture) plan(t *testing.T, targetsYAML string, sel targets.Selection) planned {
	t.Helper()
	src := "version: 1\napp:\n  name: app\n  dir: app\n  main: .\n  ldflags: [-s, -w]\nimage:\n  repository: " + f.registry + "/acme/app\n" +
		"  env: [APP_MODE=prod]\n  labels: {team: kiln}\nplatforms: [linux/amd64, linux/arm64]\ntargets:\n" + targetsYAML
	file := filepath.Join(f.dir, "kiln.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := targets.Decode(file, []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return planned{cfg, sel}
}

func (f *fixture) release(t *testing.T, p planned, push bool) (*Result, error) {
	t.Helper()
	return Release(context.Background(), p.cfg, p.sel, Options{Push: push, Jobs: 2, HostEnv: os.Environ(), Keychain: authn.DefaultKeychain})
}

func TestReleasePushesThenTagsAndIsReproducible(t *testing.T) {
	f := newFixture(t)
	p := f.plan(t, "  static:\n    libc: none\n    base: oci:bases:base@"+f.baseDigest(t)+"\n    default: true\n  bare:\n    libc: none\n    base: scratch\n", targets.Selection{})

	res, err := f.release(t, p, true)
	if err != nil {
		t.Fatal(err)
	}
	firstUploads := f.uploads.Load()
	if !res.Passed || len(res.Rows) != 4 {
		t.Fatalf("result: passed %v, %d rows", res.Passed, len(res.Rows))
	}
	repo, _ := name.NewRepository(f.registry + "/acme/app")
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if want := []string{"latest", "latest-bare", "latest-static"}; !slices.Equal(tags, want) {
		t.Errorf("tags = %v, want %v", tags, want)
	}

	idx, err := remote.Index(repo.Tag("latest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Errorf("pushed index is invalid: %v", err)
	}
	im, _ := idx.IndexManifest()
	if im.Annotations[AnnotationBaseName] != "oci:bases:base" || im.Annotations[AnnotationBaseDig] != f.baseDigest(t) {
		t.Errorf("index annotations = %v", im.Annotations)
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if !slices.Equal(cf.Config.Entrypoint, []string{"/app"}) || cf.Config.Cmd != nil || cf.Config.User != "65532:65532" ||
			!slices.Equal(cf.Config.Env, []string{"PATH=/bin", "APP_MODE=prod"}) || cf.Config.Labels["team"] != "kiln" || !cf.Created.Equal(time.Unix(0, 0)) {
			t.Errorf("%s config: %+v created %s", d.Platform.Architecture, cf.Config, cf.Created)
		}
		if cf.Architecture != d.Platform.Architecture {
			t.Errorf("descriptor says %s, config says %s", d.Platform.Architecture, cf.Architecture)
		}
		m, _ := img.Manifest()
		if m.Annotations[AnnotationBaseDig] == "" || m.Annotations[AnnotationBaseDig] == im.Annotations[AnnotationBaseDig] {
			t.Errorf("platform image should record its own base manifest digest: %v", m.Annotations)
		}
		if len(m.Layers) != 3 {
			t.Errorf("want the base's 2 layers plus one, got %d", len(m.Layers))
		}
	}
	for _, r := range res.Rows {
		if !r.Pushed || r.Status != StatusOK || r.IndexDigest == "" || !strings.HasPrefix(r.Ref, repo.String()+"@sha256:") {
			t.Errorf("row %s/%s: %+v", r.Target, r.Platform, r)
		}
	}

	again, err := f.release(t, p, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.Rows {
		if res.Rows[i].ImageDigest != again.Rows[i].ImageDigest || res.Rows[i].IndexDigest != again.Rows[i].IndexDigest {
			t.Errorf("row %d not reproducible: %s/%s vs %s/%s", i, res.Rows[i].ImageDigest, res.Rows[i].IndexDigest, again.Rows[i].ImageDigest, again.Rows[i].IndexDigest)
		}
	}
	if n := f.uploads.Load() - firstUploads; n != 0 {
		t.Errorf("a no-op rerun started %d blob uploads, want 0", n)
	}
}

func TestNothingIsPushedWhenOneTargetFailsToCompile(t *testing.T) {
	f := newFixture(t)
	p := f.plan(t, "  good:\n    libc: none\n    base: scratch\n    default: true\n  broken:\n    libc: none\n    base: scratch\n    tags: [kilnbroken]\n", targets.Selection{})
	res, err := f.release(t, p, true)
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("want a CompileError, got %v", err)
	}
	if !strings.Contains(ce.Output, "broken.go") {
		t.Errorf("the compiler's output is not in the error: %q", ce.Output)
	}
	if res.Passed || res.Error == "" {
		t.Errorf("result does not record the failure: %+v", res)
	}
	if f.uploads.Load() != 0 {
		t.Errorf("%d blob uploads happened after a failed compile", f.uploads.Load())
	}
	reg, _ := name.NewRegistry(f.registry)
	repos, err := remote.Catalog(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 0 {
		t.Errorf("registry has repositories after a failed release: %v", repos)
	}
	if _, err := os.Stat(filepath.Join(p.output(), "release.json")); err != nil {
		t.Errorf("release.json should record the failure: %v", err)
	}
}

func TestReleaseWritesALayoutOnlyWhenComplete(t *testing.T) {
	f := newFixture(t)
	p := f.plan(t, "  static:\n    libc: none\n    base: oci:bases:base@"+f.baseDigest(t)+"\n", targets.Selection{Platforms: []string{"linux/amd64"}})
	res, err := f.release(t, p, false)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(filepath.Join(p.output(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	ii, _ := lp.ImageIndex()
	m, _ := ii.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Annotations[AnnotationRefName] != "static" || m.Manifests[0].Digest.String() != res.Rows[0].ImageDigest {
		t.Fatalf("layout index = %+v, want one entry for static at %s", m.Manifests, res.Rows[0].ImageDigest)
	}
	img, err := lp.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("layout image is invalid: %v", err)
	}

	// A failing release leaves the previous layout as it was.
	broken := f.plan(t, "  static:\n    libc: none\n    base: scratch\n    tags: [kilnbroken]\n", targets.Selection{})
	if _, err := f.release(t, broken, false); err == nil {
		t.Fatal("broken build succeeded")
	}
	ii2, err := layout.ImageIndexFromPath(filepath.Join(p.output(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if d1, d2 := digestOf(t, ii), digestOf(t, ii2); d1 != d2 {
		t.Errorf("a failed release changed the layout: %s -> %s", d1, d2)
	}
}

func TestBaseErrors(t *testing.T) {
	f := newFixture(t)
	missing := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		base, want string
	}{
		{"oci:bases:base@" + missing, "has no digest " + missing},
		{"oci:nowhere@" + missing, "no OCI image layout"},
	}
	for _, tt := range tests {
		p := f.plan(t, "  static:\n    libc: none\n    base: "+tt.base+"\n", targets.Selection{})
		_, err := f.release(t, p, false)
		var ce *targets.ConfigError
		if !errors.As(err, &ce) || ce.Key != "targets.static.base" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("base %s: got %v, want a config error on targets.static.base saying %q", tt.base, err, tt.want)
		}
	}

	// A base that lacks a platform is refused before anything is compiled.
	single, _ := random.Image(100, 1)
	cf, _ := single.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	single, _ = mutate.ConfigFile(single, cf)
	ref, _ := name.ParseReference(f.registry + "/bases/amd64only:1")
	if err := remote.Write(ref, single); err != nil {
		t.Fatal(err)
	}
	d, _ := single.Digest()
	p := f.plan(t, "  static:\n    libc: none\n    base: "+f.registry+"/bases/amd64only:1@"+d.String()+"\n", targets.Selection{})
	res, err := f.release(t, p, false)
	if err == nil || !strings.Contains(err.Error(), "has no linux/arm64 image (it has: linux/amd64)") {
		t.Errorf("want the missing platform named, got %v", err)
	}
	if res.Rows[0].Timings["compile"] != 0 {
		t.Error("compiled although the base cannot serve every platform")
	}

	unreachable := f.plan(t, "  static:\n    libc: none\n    base: 127.0.0.1:1/nothing@"+missing+"\n", targets.Selection{})
	var re *RegistryError
	if _, err := f.release(t, unreachable, false); !errors.As(err, &re) {
		t.Errorf("unreachable registry: want a RegistryError, got %v", err)
	}
}

func digestOf(t *testing.T, ii v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := ii.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAFailingImageIsNeverPublished(t *testing.T) {
	f := newFixture(t)
	// scratch has no CA bundle; requiring one fails files.certs on both platforms.
	p := f.plan(t, "  good:\n    libc: none\n    base: scratch\n    default: true\n  bad:\n    libc: none\n    base: scratch\n    verify: {require: [certs]}\n", targets.Selection{})
	res, err := f.release(t, p, true)
	var ve *VerifyError
	if !errors.As(err, &ve) || len(ve.Failures) != 2 || !strings.Contains(ve.Failures[0], "bad linux/amd64: files.certs: verify.require lists certs, but no CA bundle") {
		t.Fatalf("want a VerifyError naming both bad rows, got %v", err)
	}
	if f.uploads.Load() != 0 {
		t.Errorf("%d blob uploads after a failed verification", f.uploads.Load())
	}
	for _, r := range res.Rows {
		want := StatusNotPublished
		if r.Target == "bad" {
			want = StatusFailed
		}
		if r.Status != want || len(r.Checks) == 0 || r.Pushed {
			t.Errorf("%s %s: status %q, %d checks, pushed %v; want %q", r.Target, r.Platform, r.Status, len(r.Checks), r.Pushed, want)
		}
	}
}

// A binary layer recorded by an earlier run is reused by the binary's Go
// build ID: same digests and bytes as computing it, and a damaged cached
// file is refused when read rather than published.
func TestBinaryLayerFileReusesTheRecordedLayer(t *testing.T) {
	exe, err := os.Executable() // a Go binary, with a build ID
	if err != nil {
		t.Fatal(err)
	}
	c := kilncache.New(t.TempDir(), "test")
	mtime := time.Unix(1700000000, 0)
	first, err := binaryLayerFile(c, exe, "/app", mtime, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if !isMemLayer(first) {
		t.Fatalf("first layer is a %T, want one computed from the file", first)
	}
	again, err := binaryLayerFile(c, exe, "/app", mtime, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.(*fileLayer); !ok {
		t.Fatalf("second layer is a %T, want the recorded one", again)
	}
	for _, get := range []func(v1.Layer) (v1.Hash, error){v1.Layer.Digest, v1.Layer.DiffID} {
		a, _ := get(first)
		b, _ := get(again)
		if a != b {
			t.Errorf("recorded %s, computed %s", b, a)
		}
	}
	for _, read := range []func(v1.Layer) (io.ReadCloser, error){v1.Layer.Compressed, v1.Layer.Uncompressed} {
		if a, b := readAll(t, read, first), readAll(t, read, again); !bytes.Equal(a, b) {
			t.Errorf("recorded layer bytes differ from computed ones (%d vs %d bytes)", len(b), len(a))
		}
	}
	if other, _ := binaryLayerFile(c, exe, "/usr/bin/app", mtime, types.OCILayer); !isMemLayer(other) {
		t.Error("another entrypoint reused the record")
	}

	d, _ := first.DiffID()
	gz := c.File(layersKind, d.Hex+".tar.gz")
	data, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(gz, data, 0o644); err != nil {
		t.Fatal(err)
	}
	damaged, err := binaryLayerFile(c, exe, "/app", mtime, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := damaged.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "want sha256:") {
		t.Errorf("reading a damaged cached layer: err = %v", err)
	}
}

func TestOnlyLinkerBuildIDsNameContent(t *testing.T) {
	exe, _ := os.Executable()
	for id, want := range map[string]bool{
		kilncache.GoBuildID(exe): true,
		"mStIW7hZeceWvuubsR4Q/mb0R9hBihcJ9Re_rAH_0/UKrJyJBqVVdFWi0Kr0Ds/GREMAOI5MvpHq-C7sEi_": true,
		"":              false,
		"release-1.2.3": false, // -ldflags=-buildid=release-1.2.3: the same for every binary
		"a/b/c/d":       false,
		"mStIW7hZeceWvuubsR4Q/mb0R9hBihcJ9Re_rAH_0": false,
	} {
		if got := linkerBuildID(id); got != want {
			t.Errorf("linkerBuildID(%q) = %v, want %v", id, got, want)
		}
	}
}

func isMemLayer(l v1.Layer) bool {
	_, ok := l.(*memLayer)
	return ok
}

func readAll(t *testing.T, open func(v1.Layer) (io.ReadCloser, error), l v1.Layer) []byte {
	t.Helper()
	rc, err := open(l)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A warm release reuses the static verification of the same image and
// expectations, never run.*, and a changed expectation is verified afresh.
func TestWarmReleaseReusesOnlyWhatItMay(t *testing.T) {
	f := newFixture(t)
	c := kilncache.New(t.TempDir(), "test")
	const static = "  static:\n    libc: none\n    base: oci:bases:base@%s\n    default: true\n    verify: {run: false%s}\n  ran:\n    libc: none\n    base: scratch\n"
	sel := targets.Selection{Platforms: []string{"linux/amd64"}}
	release := func(extra string) (*Result, error) {
		p := f.plan(t, fmt.Sprintf(static, f.baseDigest(t), extra), sel)
		return Release(t.Context(), p.cfg, p.sel, Options{Jobs: 2, HostEnv: os.Environ(), Cache: c})
	}
	first, err := release("")
	if err != nil {
		t.Fatal(err)
	}
	second, err := release("")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range second.Rows {
		if want := r.Target == "static"; r.VerifyCached != want {
			t.Errorf("%s: verify_cached = %v, want %v", r.Target, r.VerifyCached, want)
		}
		if r.ImageDigest != first.Rows[i].ImageDigest || !slices.Equal(r.Checks, first.Rows[i].Checks) {
			t.Errorf("%s: the warm release differs: %s %v, was %s %v", r.Target, r.ImageDigest, r.Checks, first.Rows[i].ImageDigest, first.Rows[i].Checks)
		}
		if first.Rows[i].VerifyCached {
			t.Errorf("%s: the first release claims a cached verification", r.Target)
		}
	}
	// The base has no CA bundle: requiring one must fail, not hit the cache.
	_, err = release(", require: [certs]")
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "files.certs") {
		t.Fatalf("a changed expectation was not verified again: %v", err)
	}
}

// A pinned registry base is known from the cache on the next release: no
// manifest request, the same digests, and its layers still reach a
// repository that lacks them.
func TestPinnedBaseComesFromTheCache(t *testing.T) {
	f := newFixture(t)
	ii, err := layout.ImageIndexFromPath(filepath.Join(f.dir, "bases"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ii.IndexManifest()
	base, err := ii.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(f.registry + "/bases/base:1")
	if err := remote.WriteIndex(ref, base); err != nil {
		t.Fatal(err)
	}
	d, _ := base.Digest()
	c := kilncache.New(t.TempDir(), "test")
	release := func(repo string) *Result {
		t.Helper()
		p := f.plan(t, "  static:\n    libc: none\n    base: "+f.registry+"/bases/base@"+d.String()+"\n    default: true\n", targets.Selection{})
		p.cfg.Image.Repository = f.registry + "/" + repo
		res, err := Release(t.Context(), p.cfg, p.sel, Options{Push: true, Jobs: 2, HostEnv: os.Environ(), Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := release("acme/app")
	before := f.baseReads.Load()
	if before == 0 {
		t.Fatal("the first release did not read the base from the registry")
	}
	again := release("acme/app")
	if n := f.baseReads.Load() - before; n != 0 {
		t.Errorf("a release with the base cached made %d manifest requests to it", n)
	}
	other := release("acme/other")
	for i := range first.Rows {
		if again.Rows[i].IndexDigest != first.Rows[i].IndexDigest || other.Rows[i].IndexDigest != first.Rows[i].IndexDigest {
			t.Errorf("row %d: index %s, then %s from the cache, %s in another repository", i, first.Rows[i].IndexDigest, again.Rows[i].IndexDigest, other.Rows[i].IndexDigest)
		}
	}
	// The other repository never had the base's layers: they were mounted
	// or copied from the base's repository, whole.
	otherRef, _ := name.ParseReference(f.registry + "/acme/other:latest")
	idx, err := remote.Index(otherRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Errorf("the image pushed with a cached base is invalid: %v", err)
	}
}

// A registry that accepts connections and never answers fails the release
// with a registry error instead of hanging it.
func TestASilentRegistryFailsTheRelease(t *testing.T) {
	f := newFixture(t)
	silent := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-silent:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(silent) }) // runs first: the handlers return, Close can finish
	host := strings.TrimPrefix(srv.URL, "http://")
	p := f.plan(t, "  static:\n    libc: none\n    base: "+host+"/bases/base@sha256:"+strings.Repeat("a", 64)+"\n", targets.Selection{})
	_, err := Release(t.Context(), p.cfg, p.sel, Options{Jobs: 2, HostEnv: os.Environ(), RegistryTimeout: 300 * time.Millisecond})
	var re *RegistryError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("want a RegistryError naming the timeout, got %v", err)
	}
}

// When several things are wrong before compiling, the release reports the
// same one every time, whichever check finished first.
func TestPreCompileProblemsAreReportedInAFixedOrder(t *testing.T) {
	f := newFixture(t)
	missing := "sha256:" + strings.Repeat("0", 64)
	p := f.plan(t, "  static:\n    libc: none\n    base: oci:bases:base@"+missing+"\nsign:\n  key: nope.key\n", targets.Selection{})
	for range 5 {
		_, err := Release(t.Context(), p.cfg, p.sel, Options{HostEnv: os.Environ()})
		var ce *targets.ConfigError
		if !errors.As(err, &ce) || ce.Key != "targets.static.base" {
			t.Fatalf("want the base's config error before the key's, got %v", err)
		}
	}
}

// An attestation sign.attest asks for and that cannot be made fails the
// signing stage before anything is signed, instead of being left out.
func TestAMissingSBOMStopsSigning(t *testing.T) {
	f := newFixture(t)
	p := f.plan(t, "  static:\n    libc: none\n    base: scratch\n", targets.Selection{Platforms: []string{"linux/amd64"}})
	plan, err := targets.Expand(p.cfg, p.sel)
	if err != nil {
		t.Fatal(err)
	}
	p.cfg.Sign.Attest = []string{"sbom", "verification"}
	pr := &pubRow{row: plan.Rows[0]} // as a merge of a release.json without build_info
	arts := []*artifact{{target: "static", rows: []*pubRow{pr}}}
	_, err = attestations(p.cfg, "", ImageSpec{}, arts)
	var se *SignError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "build info is not known") {
		t.Fatalf("want a SignError about the missing build info, got %v", err)
	}
	p.cfg.Sign.Attest = []string{"verification"}
	atts, err := attestations(p.cfg, "", ImageSpec{}, arts)
	if err != nil || len(atts[pr]) != 1 {
		t.Fatalf("verification only: %v, %d attestations", err, len(atts[pr]))
	}
}

// A row's status is computed from what the stages produced: its own
// failure first, then how far publishing got.
func TestRowStatus(t *testing.T) {
	passed := &verify.Report{Passed: true, Checks: []verify.Finding{{ID: "elf.arch", Status: verify.Pass}}}
	failed := &verify.Report{Checks: []verify.Finding{{ID: "files.certs", Status: verify.Fail, Evidence: "no CA bundle"}}}
	pushErr := &RegistryError{Op: "pushing to", Ref: "r", Err: errors.New("denied")}
	gate := &VerifyError{Failures: []string{"bad linux/amd64: files.certs: no CA bundle"}}
	tests := []struct {
		name      string
		b         rowBuild
		pub       published
		err       error
		status    string
		errPrefix string
	}{
		{"compile failed", rowBuild{err: &CompileError{Row: "a", Err: errors.New("exit status 1")}}, published{}, errors.New("x"), StatusFailed, "compiling a"},
		{"stopped by another", rowBuild{stopped: true}, published{}, errors.New("x"), StatusNotBuilt, "stopped: another build failed"},
		{"never reached", rowBuild{}, published{}, errors.New("x"), StatusNotBuilt, ""},
		{"its checks failed", rowBuild{report: failed}, published{}, gate, StatusFailed, "verification failed: files.certs: no CA bundle"},
		{"another row failed", rowBuild{report: passed}, published{}, gate, StatusNotPublished, "not published: verification failed:"},
		{"publishing failed", rowBuild{report: passed}, published{started: true}, pushErr, StatusFailed, "pushing to r: denied"},
		{"published, then signing failed", rowBuild{report: passed}, published{started: true, done: true}, errors.New("signing"), StatusOK, ""},
		{"published", rowBuild{report: passed}, published{started: true, done: true}, nil, StatusOK, ""},
	}
	for _, tt := range tests {
		status, msg := rowStatus(&tt.b, tt.pub, tt.err)
		if status != tt.status || !strings.HasPrefix(msg, tt.errPrefix) || tt.errPrefix == "" && msg != "" {
			t.Errorf("%s: %q, %q; want %q, %q…", tt.name, status, msg, tt.status, tt.errPrefix)
		}
	}
}
