package testbase

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// writeLayout writes the stand-ins into a fresh temporary directory. A
// machine without the Debian packages skips, except in CI, which installs
// them all.
func writeLayout(t *testing.T) (string, map[string]v1.Hash) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bases")
	digests, err := Write(dir)
	var missing *MissingHostFileError
	if errors.As(err, &missing) {
		missingTool(t, "Write: "+err.Error())
	}
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return dir, digests
}

// topIndex reads the layout's index.json.
func topIndex(t *testing.T, dir string) (v1.ImageIndex, *v1.IndexManifest) {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return top, im
}

// findManifest returns the digest of the first descriptor of im that match
// accepts, and fails the test with the message missing when none does.
func findManifest(t *testing.T, im *v1.IndexManifest, match func(v1.Descriptor) bool, missing string) v1.Hash {
	t.Helper()
	for _, d := range im.Manifests {
		if match(d) {
			return d.Digest
		}
	}
	t.Fatal(missing)
	return v1.Hash{}
}

// entryIndex returns the index named name in the layout at dir.
func entryIndex(t *testing.T, dir, name string) v1.ImageIndex {
	t.Helper()
	top, im := topIndex(t, dir)
	d := findManifest(t, im, func(d v1.Descriptor) bool { return d.Annotations[RefNameAnnotation] == name },
		fmt.Sprintf("no entry %q in %s", name, dir))
	idx, err := top.ImageIndex(d)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// platformImage returns the linux/arch image of the entry name.
func platformImage(t *testing.T, dir, name, arch string) v1.Image {
	t.Helper()
	idx := entryIndex(t, dir, name)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	d := findManifest(t, im, func(d v1.Descriptor) bool {
		return d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == arch
	}, fmt.Sprintf("%s has no linux/%s image", name, arch))
	img, err := idx.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// layerEntries returns the entries of img's only layer, in tar order,
// keyed by absolute path without a trailing slash.
func layerEntries(t *testing.T, img v1.Image) ([]string, map[string]tarEntry) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var order []string
	entries := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(hdr.Name, "/")
		order = append(order, p)
		entries[p] = tarEntry{hdr: hdr, data: data}
	}
	return order, entries
}

func TestWriteIsDeterministic(t *testing.T) {
	_, first := writeLayout(t)
	_, second := writeLayout(t)
	for _, name := range Names() {
		if first[name] != second[name] {
			t.Errorf("%s: digests differ between two writes: %s and %s", name, first[name], second[name])
		}
	}
	if len(first) != len(Names()) {
		t.Errorf("Write returned %d digests, want %d", len(first), len(Names()))
	}
}

func TestWriteLayout(t *testing.T) {
	dir, digests := writeLayout(t)
	_, im := topIndex(t, dir)
	var names []string
	for _, d := range im.Manifests {
		name := d.Annotations[RefNameAnnotation]
		names = append(names, name)
		if d.MediaType != types.OCIImageIndex {
			t.Errorf("%s: media type %s, want %s", name, d.MediaType, types.OCIImageIndex)
		}
		if d.Digest != digests[name] {
			t.Errorf("%s: index.json has %s, Write returned %s", name, d.Digest, digests[name])
		}
	}
	if !slices.Equal(names, Names()) {
		t.Errorf("entries %q, want %q", names, Names())
	}

	wantArchs := map[string][]string{"static": {"amd64", "arm64"}, "base": {"amd64", "arm64"}, "alpine": {"amd64"}}
	for _, name := range Names() {
		idx := entryIndex(t, dir, name)
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var archs []string
		for _, d := range im.Manifests {
			if d.MediaType != types.OCIManifestSchema1 || d.Platform == nil || d.Platform.OS != "linux" || d.ArtifactType != "" {
				t.Errorf("%s: unexpected manifest descriptor %+v", name, d)
				continue
			}
			archs = append(archs, d.Platform.Architecture)
		}
		if !slices.Equal(archs, wantArchs[name]) {
			t.Errorf("%s: platforms %q, want %q", name, archs, wantArchs[name])
		}
	}
}

func TestImageConfigs(t *testing.T) {
	dir, _ := writeLayout(t)
	for _, tc := range []struct {
		name, arch, user, workdir string
	}{
		{"static", "amd64", "65532", "/home/nonroot"},
		{"static", "arm64", "65532", "/home/nonroot"},
		{"base", "amd64", "65532", "/home/nonroot"},
		{"base", "arm64", "65532", "/home/nonroot"},
		{"alpine", "amd64", "", "/"},
	} {
		img := platformImage(t, dir, tc.name, tc.arch)
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
			t.Errorf("%s/%s: media types %s, %s, %s are not OCI", tc.name, tc.arch, m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != tc.arch {
			t.Errorf("%s/%s: config platform %s/%s", tc.name, tc.arch, cf.OS, cf.Architecture)
		}
		if !cf.Created.Time.Equal(epoch) {
			t.Errorf("%s/%s: created %s, want %s", tc.name, tc.arch, cf.Created.Time, epoch)
		}
		c := cf.Config
		if !slices.Equal(c.Env, []string{envPath}) || c.User != tc.user || c.WorkingDir != tc.workdir {
			t.Errorf("%s/%s: Env %q User %q WorkingDir %q, want [%s] %q %q", tc.name, tc.arch, c.Env, c.User, c.WorkingDir, envPath, tc.user, tc.workdir)
		}
	}
}

// checkLayerHygiene asserts the reproducibility rules for every entry.
func checkLayerHygiene(t *testing.T, label string, order []string, entries map[string]tarEntry) {
	t.Helper()
	if !slices.IsSorted(order) {
		t.Errorf("%s: entries are not sorted by path", label)
	}
	seen := map[string]bool{"/": true}
	for _, p := range order {
		e := entries[p].hdr
		if !seen[path.Dir(p)] {
			t.Errorf("%s: %s comes before its parent directory", label, p)
		}
		seen[p] = true
		if !e.ModTime.Equal(epoch) || e.Uname != "" || e.Gname != "" {
			t.Errorf("%s: %s has mtime %s, uname %q, gname %q", label, p, e.ModTime, e.Uname, e.Gname)
		}
		if p != "/home/nonroot" && (e.Uid != 0 || e.Gid != 0) {
			t.Errorf("%s: %s is owned by %d:%d", label, p, e.Uid, e.Gid)
		}
		var want []int64
		switch e.Typeflag {
		case tar.TypeDir:
			want = []int64{modeDir, 0o700, modeSticky}
		case tar.TypeReg:
			want = []int64{modeFile, modeExec}
		case tar.TypeSymlink:
			want = []int64{0o777}
		default:
			t.Errorf("%s: %s has tar type %q", label, p, e.Typeflag)
		}
		if !slices.Contains(want, e.Mode) {
			t.Errorf("%s: %s has mode %o", label, p, e.Mode)
		}
	}
}

func TestContents(t *testing.T) {
	dir, _ := writeLayout(t)
	for _, tc := range []struct{ name, arch string }{
		{"static", "amd64"}, {"static", "arm64"}, {"base", "amd64"}, {"base", "arm64"}, {"alpine", "amd64"},
	} {
		label := tc.name + "/" + tc.arch
		order, entries := layerEntries(t, platformImage(t, dir, tc.name, tc.arch))
		checkLayerHygiene(t, label, order, entries)

		want := func(p string, typ byte, mode int64) []byte {
			t.Helper()
			e, ok := entries[p]
			if !ok {
				t.Errorf("%s: %s is missing", label, p)
				return nil
			}
			if e.hdr.Typeflag != typ || e.hdr.Mode != mode {
				t.Errorf("%s: %s has type %q mode %o, want %q %o", label, p, e.hdr.Typeflag, e.hdr.Mode, typ, mode)
			}
			return e.data
		}
		wantLink := func(p, target string) {
			t.Helper()
			want(p, tar.TypeSymlink, 0o777)
			if got := entries[p].hdr; got != nil && got.Linkname != target {
				t.Errorf("%s: %s -> %s, want -> %s", label, p, got.Linkname, target)
			}
		}
		wantNone := func(p string) {
			t.Helper()
			if _, ok := entries[p]; ok {
				t.Errorf("%s: %s should not exist", label, p)
			}
		}
		contains := func(p string, data []byte, re string) {
			t.Helper()
			if !regexp.MustCompile(re).Match(data) {
				t.Errorf("%s: %s does not match %q:\n%s", label, p, re, data)
			}
		}

		contains("/etc/passwd", want("/etc/passwd", tar.TypeReg, modeFile), `(?m)^root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:.*\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin$`)
		contains("/etc/group", want("/etc/group", tar.TypeReg, modeFile), `(?m)^root:x:0:\nnobody:x:65534:\nnonroot:x:65532:$`)
		contains("/etc/os-release", want("/etc/os-release", tar.TypeReg, modeFile), `kiln stand-in`)
		contains(certsPath, want(certsPath, tar.TypeReg, modeFile), `-----BEGIN CERTIFICATE-----`)
		contains("UTC", want("/usr/share/zoneinfo/Etc/UTC", tar.TypeReg, modeFile), `^TZif`)
		want("/usr/share/zoneinfo/Europe/Berlin", tar.TypeReg, modeFile)
		wantLink("/usr/share/zoneinfo/UTC", "Etc/UTC")
		wantNone("/usr/share/zoneinfo/right")
		wantNone("/usr/share/zoneinfo/posix")
		wantNone("/usr/share/zoneinfo/localtime")
		want("/tmp", tar.TypeDir, modeSticky)
		want("/root", tar.TypeDir, 0o700)
		want("/home/nonroot", tar.TypeDir, 0o700)
		if e := entries["/home/nonroot"].hdr; e != nil && (e.Uid != nonrootUID || e.Gid != nonrootUID) {
			t.Errorf("%s: /home/nonroot is owned by %d:%d, want 65532:65532", label, e.Uid, e.Gid)
		}

		switch tc.name {
		case "static":
			contains("/etc/nsswitch.conf", want("/etc/nsswitch.conf", tar.TypeReg, modeFile), `(?m)^hosts:\s+files dns$`)
			wantNone("/lib")
			wantNone("/etc/ld.so.cache")
		case "base":
			contains("/etc/nsswitch.conf", want("/etc/nsswitch.conf", tar.TypeReg, modeFile), `(?m)^passwd:\s+files\ngroup:\s+files$`)
			checkGlibc(t, label, tc.arch, want, wantLink, contains)
		case "alpine":
			wantNone("/etc/nsswitch.conf")
			wantNone("/etc/ld.so.cache")
			if got := string(want("/etc/alpine-release", tar.TypeReg, modeFile)); got != "3.19.0 (kiln stand-in)\n" {
				t.Errorf("%s: /etc/alpine-release is %q", label, got)
			}
			contains("/lib/ld-musl-x86_64.so.1", want("/lib/ld-musl-x86_64.so.1", tar.TypeReg, modeExec), `^\x7fELF`)
			wantLink("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
			contains("/bin/busybox", want("/bin/busybox", tar.TypeReg, modeExec), `^\x7fELF`)
			wantLink("/bin/sh", "busybox")
		}
	}
}

func checkGlibc(t *testing.T, label, arch string,
	want func(string, byte, int64) []byte, wantLink func(string, string), contains func(string, []byte, string)) {
	t.Helper()
	a, err := glibcArchFor(arch)
	if err != nil {
		t.Fatal(err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	libs := []string{a.loader, "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
		"libresolv.so.2", "libnss_dns.so.2", "libnss_files.so.2", "libgcc_s.so.1"}
	for _, lib := range libs {
		p := path.Join(a.libDir, lib)
		b := want(p, tar.TypeReg, modeExec)
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: %s is not ELF: %v", label, p, err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("%s: %s is for %s, want %s", label, p, f.Machine, machine)
		}
	}
	wantLink(a.loaderLink, path.Join(a.libDir, a.loader))
	contains("/etc/ld.so.conf", want("/etc/ld.so.conf", tar.TypeReg, modeFile), `(?m)^`+regexp.QuoteMeta(a.libDir)+`$`)

	entries, err := parseLDCache(want("/etc/ld.so.cache", tar.TypeReg, modeFile))
	if err != nil {
		t.Fatalf("%s: /etc/ld.so.cache: %v", label, err)
	}
	flags, _ := ldCacheFlags(machine)
	var got []string
	for _, e := range entries {
		got = append(got, e.Soname)
		if e.Path != path.Join(a.libDir, e.Soname) || e.Flags != flags {
			t.Errorf("%s: ld.so.cache entry %+v, want path %s flags %#x", label, e, path.Join(a.libDir, e.Soname), flags)
		}
	}
	slices.Sort(got)
	slices.Sort(libs)
	if !slices.Equal(got, libs) {
		t.Errorf("%s: ld.so.cache lists %q, want %q", label, got, libs)
	}
}

func TestMissingHostFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bases")
	_, err := host{root: t.TempDir()}.write(dir)
	var missing *MissingHostFileError
	if !errors.As(err, &missing) {
		t.Fatalf("got %v, want a MissingHostFileError", err)
	}
	if missing.Path != certsPath || missing.Package != "ca-certificates" {
		t.Errorf("got %+v, want %s from ca-certificates", missing, certsPath)
	}
	if !strings.Contains(err.Error(), "apt-get install -y ca-certificates") {
		t.Errorf("error %q does not say what to install", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Write left %s behind (%v)", dir, err)
	}
}

// A host with everything but the arm64 cross libraries fails on them, and
// the layout written before stays as it was.
func TestFailedWriteKeepsOldLayout(t *testing.T) {
	dir, digests := writeLayout(t)
	fake := t.TempDir()
	for _, p := range []string{certsPath, zoneinfoDir, "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-musl", "/bin/busybox"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(fake, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(fake, p)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := host{root: fake}.write(dir)
	var missing *MissingHostFileError
	if !errors.As(err, &missing) || missing.Package != "libc6-arm64-cross" {
		t.Fatalf("got %v, want a missing file of libc6-arm64-cross", err)
	}
	_, im := topIndex(t, dir) // fails when the old layout is gone
	for _, d := range im.Manifests {
		if name := d.Annotations[RefNameAnnotation]; d.Digest != digests[name] {
			t.Errorf("%s changed to %s after a failed Write", name, d.Digest)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".kiln-layout-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary layouts left behind: %q", leftovers)
	}
}

func TestWriteRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Fatalf("Write into a non-layout directory: got %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("Write removed foreign content: %v", err)
	}
	if _, err := Write("."); err == nil {
		t.Error(`Write(".") succeeded`)
	}
}
