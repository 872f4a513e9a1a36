package testbase

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// cbrtSource needs libm, so running it proves that the loader found
// libm.so.6 in the image.
const cbrtSource = `#include <math.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
	double x = argc > 1 ? atof(argv[1]) : 27;
	printf("cbrt(%g) = %g\n", x, cbrt(x));
	return 0;
}
`

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missingTool(t, "chroot into an unpacked image needs root")
	}
}

func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missingTool(t, name+" is not installed (apt-get install -y "+pkg+")")
	}
	return p
}

// missingTool skips the test for why; under CI (CI set), which runs as root
// and installs every tool (make deps-test), it fails it instead.
func missingTool(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI provides it (make deps-test)", why)
	}
	t.Skip(why)
}

// unpack extracts img's only layer below a new directory, with owners when
// running as root.
func unpack(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	order, entries := layerEntries(t, img)
	for _, p := range order {
		hdr, data := entries[p].hdr, entries[p].data
		dst := filepath.Join(root, filepath.FromSlash(p))
		var err error
		mode := os.FileMode(hdr.Mode & 0o777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.Mkdir(dst, 0o755)
		case tar.TypeReg:
			err = os.WriteFile(dst, data, mode)
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, dst)
		}
		if err == nil && os.Geteuid() == 0 {
			err = os.Lchown(dst, hdr.Uid, hdr.Gid)
		}
		if err == nil && hdr.Typeflag == tar.TypeDir {
			m := mode
			if hdr.Mode&0o1000 != 0 {
				m |= os.ModeSticky
			}
			err = os.Chmod(dst, m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// runIn runs argv inside root with env as the whole environment and
// returns its combined output.
func runIn(root string, env []string, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func compileC(t *testing.T, cc, out string, args ...string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "cbrt.c")
	if err := os.WriteFile(src, []byte(cbrtSource), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cc, append([]string{"-O2", "-o", out, src}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
}

// foundViaCache reports whether an LD_DEBUG=libs trace shows the loader
// opening lib at path straight from /etc/ld.so.cache.
func foundViaCache(trace, lib, path string) bool {
	_, after, ok := strings.Cut(trace, "find library="+lib)
	if !ok {
		return false
	}
	lines := strings.SplitN(after, "\n", 4)
	return len(lines) >= 3 &&
		strings.Contains(lines[1], "search cache=/etc/ld.so.cache") &&
		strings.Contains(lines[2], "trying file="+path)
}

func TestBaseAmd64Runs(t *testing.T) {
	requireRoot(t)
	dir, _ := writeLayout(t)
	root := unpack(t, platformImage(t, dir, "base", "amd64"))

	out, err := runIn(root, nil, "/lib64/ld-linux-x86-64.so.2", "--list", "/lib/x86_64-linux-gnu/libm.so.6")
	if err != nil || !strings.Contains(out, "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6") {
		t.Fatalf("ld.so --list libm.so.6 in the base image: %v\n%s", err, out)
	}

	cc := requireTool(t, "cc", "gcc")
	compileC(t, cc, filepath.Join(root, "app"), "-lm")
	out, err = runIn(root, []string{"LD_DEBUG=libs"}, "/app", "125")
	if err != nil || !strings.Contains(out, "cbrt(125) = 5") {
		t.Fatalf("running a libm program in the base image: %v\n%s", err, out)
	}
	if !foundViaCache(out, "libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6") {
		t.Errorf("the loader did not find libm.so.6 through /etc/ld.so.cache:\n%s", out)
	}
}

// TestBaseArm64Runs runs an arm64 program under qemu in the arm64 base
// image. Debian's aarch64 loader also searches /lib/aarch64-linux-gnu by
// default, so the test then moves libm where only the cache can point.
func TestBaseArm64Runs(t *testing.T) {
	requireRoot(t)
	qemu := requireTool(t, "qemu-aarch64-static", "qemu-user-static")
	cc := requireTool(t, "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
	dir, _ := writeLayout(t)
	root := unpack(t, platformImage(t, dir, "base", "arm64"))
	compileC(t, cc, filepath.Join(root, "app"), "-lm")
	b, err := os.ReadFile(qemu)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "qemu"), b, 0o755); err != nil {
		t.Fatal(err)
	}

	out, err := runIn(root, []string{"LD_DEBUG=libs"}, "/qemu", "/app", "64")
	if err != nil || !strings.Contains(out, "cbrt(64) = 4") {
		t.Fatalf("running an arm64 libm program in the base image: %v\n%s", err, out)
	}
	if !foundViaCache(out, "libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6") {
		t.Errorf("the loader did not find libm.so.6 through /etc/ld.so.cache:\n%s", out)
	}

	cachePath := filepath.Join(root, "etc", "ld.so.cache")
	image, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseLDCache(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "lib/aarch64-linux-gnu/libm.so.6"), filepath.Join(root, "opt/libm.so.6")); err != nil {
		t.Fatal(err)
	}
	var withoutLibm []ldCacheEntry
	for i, e := range entries {
		if e.Soname == "libm.so.6" {
			entries[i].Path = "/opt/libm.so.6"
			continue
		}
		withoutLibm = append(withoutLibm, e)
	}

	if err := os.WriteFile(cachePath, buildLDCache(withoutLibm), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runIn(root, nil, "/qemu", "/app"); err == nil || !strings.Contains(out, "libm.so.6: cannot open shared object file") {
		t.Fatalf("with libm in /opt and not in the cache, the program should not start: %v\n%s", err, out)
	}
	if err := os.WriteFile(cachePath, buildLDCache(entries), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runIn(root, []string{"LD_DEBUG=libs"}, "/qemu", "/app", "8")
	if err != nil || !strings.Contains(out, "cbrt(8) = 2") || !foundViaCache(out, "libm.so.6", "/opt/libm.so.6") {
		t.Fatalf("with the cache pointing at /opt/libm.so.6: %v\n%s", err, out)
	}
}

func TestAlpineRuns(t *testing.T) {
	requireRoot(t)
	dir, _ := writeLayout(t)
	root := unpack(t, platformImage(t, dir, "alpine", "amd64"))

	out, err := runIn(root, nil, "/bin/sh", "-c", "echo hello from busybox")
	if err != nil || out != "hello from busybox\n" {
		t.Fatalf("/bin/sh in the alpine image: %v\n%s", err, out)
	}
	musl := requireTool(t, "musl-gcc", "musl-tools")
	compileC(t, musl, filepath.Join(root, "app"))
	out, err = runIn(root, nil, "/app", "27")
	if err != nil || !strings.Contains(out, "cbrt(27) = 3") {
		t.Fatalf("running a musl program in the alpine image: %v\n%s", err, out)
	}
}

func TestSkopeoInspect(t *testing.T) {
	skopeo := requireTool(t, "skopeo", "skopeo")
	dir, digests := writeLayout(t)
	for _, name := range Names() {
		raw, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+":"+name).Output()
		if err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v", name, exitDetail(err))
		}
		sum := sha256.Sum256(raw)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != digests[name].String() {
			t.Errorf("skopeo sees %s as %s, Write returned %s", name, got, digests[name])
		}
		for _, arch := range []string{"amd64", "arm64"} {
			if name == "alpine" && arch == "arm64" {
				continue
			}
			out, err := exec.Command(skopeo, "inspect", "--override-os", "linux", "--override-arch", arch, "oci:"+dir+":"+name).Output()
			if err != nil {
				t.Fatalf("skopeo inspect %s for %s: %v", name, arch, exitDetail(err))
			}
			var got struct{ Architecture, Os string }
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.Architecture != arch || got.Os != "linux" {
				t.Errorf("skopeo inspect %s for %s: got %s/%s", name, arch, got.Os, got.Architecture)
			}
		}
	}
}

// umoci 0.4 cannot pick a platform from an index ("tag is ambiguous"), so
// the multi-platform entries go through a skopeo copy, as in the machine
// notes; single-platform alpine unpacks directly.
func TestUmociUnpack(t *testing.T) {
	umoci := requireTool(t, "umoci", "umoci")
	skopeo := requireTool(t, "skopeo", "skopeo")
	dir, _ := writeLayout(t)
	single := filepath.Join(t.TempDir(), "single")
	for _, name := range []string{"static", "base"} {
		if out, err := exec.Command(skopeo, "copy", "--quiet", "oci:"+dir+":"+name, "oci:"+single+":"+name).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", name, err, out)
		}
	}
	for _, ref := range []string{single + ":static", single + ":base", dir + ":alpine"} {
		bundle := filepath.Join(t.TempDir(), "bundle")
		args := []string{"unpack", "--image", ref, bundle}
		if os.Geteuid() != 0 {
			args = []string{"unpack", "--rootless", "--image", ref, bundle}
		}
		if out, err := exec.Command(umoci, args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		fi, err := os.Stat(filepath.Join(bundle, "rootfs", "etc", "ssl", "certs", "ca-certificates.crt"))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("umoci unpack %s: no CA bundle (%v)", ref, err)
		}
		fi, err = os.Stat(filepath.Join(bundle, "rootfs", "tmp"))
		if err != nil {
			t.Errorf("umoci unpack %s: %v", ref, err)
		} else if fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
			t.Errorf("umoci unpack %s: /tmp is %v, want drwxrwxrwt", ref, fi.Mode())
		}
	}
}

func exitDetail(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}
