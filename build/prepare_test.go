package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kilnbuild/kiln/targets"
)

// oldGlibc builds a stand-in libc.so.6 whose version definitions stop at
// GLIBC_2.31, like Debian 11's: a real shared object, made by the host gcc
// with a version script.
func oldGlibc(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		missingTool(t, "gcc is not installed (Debian package gcc)")
	}
	dir := t.TempDir()
	versions := []string{"GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.28", "GLIBC_2.31"}
	var script strings.Builder
	prev := ""
	for i, v := range versions {
		script.WriteString(v + " { global: kiln_sym" + string(rune('a'+i)) + "; }")
		if prev != "" {
			script.WriteString(" " + prev)
		}
		script.WriteString(";\n")
		prev = v
	}
	src := "int kiln_syma(void){return 0;}\nint kiln_symb(void){return 1;}\nint kiln_symc(void){return 2;}\nint kiln_symd(void){return 3;}\n"
	for name, content := range map[string]string{"libc.c": src, "libc.map": script.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "libc.so.6")
	cmd := exec.Command("gcc", "-shared", "-fPIC", "-nostdlib", "-Wl,--version-script="+filepath.Join(dir, "libc.map"), "-Wl,-soname,libc.so.6", "-o", out, filepath.Join(dir, "libc.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the stand-in libc: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layoutBase writes a single-layer amd64 image holding files into a layout
// entry named name inside the fixture's bases layout, and returns its digest.
func (f *fixture) layoutBase(t *testing.T, name string, files map[string][]byte, links map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	for p, target := range links {
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Linkname: target, Typeflag: tar.TypeSymlink}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	raw := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, _ = mutate.ConfigFile(img, cf)
	lp, err := layout.FromPath(filepath.Join(f.dir, "bases"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{AnnotationRefName: name}), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// Prepare reads what each base holds and refuses, before compiling, a
// dynamic cgo row whose base lacks its loader; a toolchain whose glibc is
// newer than the base's is a warning naming both versions.
func TestPrepareChecksTheBaseBeforeCompiling(t *testing.T) {
	f := newFixture(t)
	libc := oldGlibc(t)
	old := f.layoutBase(t, "bullseye", map[string][]byte{
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": []byte("loader"),
		"/lib/x86_64-linux-gnu/libc.so.6":            libc,
	}, map[string]string{"/lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"})
	musl := f.layoutBase(t, "alpine", map[string][]byte{"/lib/ld-musl-x86_64.so.1": []byte("musl")}, nil)
	amd64 := targets.Selection{Platforms: []string{"linux/amd64"}}
	prepare := func(targetsYAML string) (*Prepared, error) {
		p := f.plan(t, targetsYAML, amd64)
		return Prepare(t.Context(), p.cfg, p.sel, Options{HostEnv: os.Environ()})
	}

	prep, err := prepare("  glibc: {libc: glibc, base: 'oci:bases:bullseye@" + old + "'}\n")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(prep.Plan.Rows[0].Warnings, "\n")
	if !strings.Contains(w, "but the base has GLIBC_2.31 (/lib/x86_64-linux-gnu/libc.so.6)") || !strings.Contains(w, "links against GLIBC_2.3") {
		t.Errorf("want a warning naming both glibc versions, got %q", w)
	}

	_, err = prepare("  glibc: {libc: glibc, base: 'oci:bases:alpine@" + musl + "'}\n")
	var ce *targets.ConfigError
	if !errors.As(err, &ce) || ce.Key != "targets.glibc.base" ||
		!strings.Contains(err.Error(), "has no glibc loader /lib64/ld-linux-x86-64.so.2 for linux/amd64; it has the musl loader /lib/ld-musl-x86_64.so.1") {
		t.Errorf("glibc on a musl base: got %v", err)
	}

	if _, err := prepare("  alpine: {libc: musl, base: 'oci:bases:bullseye@" + old + "'}\n"); err == nil || !strings.Contains(err.Error(), "has no musl loader /lib/ld-musl-x86_64.so.1 for linux/amd64; it has the glibc loader") {
		t.Errorf("musl on a glibc base: got %v", err)
	}
	if _, err := prepare("  alpine: {libc: musl, link: static, base: 'oci:bases:bullseye@" + old + "'}\n"); err != nil {
		t.Errorf("a static musl binary needs no loader: %v", err)
	}
}
