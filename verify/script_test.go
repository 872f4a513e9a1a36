package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kilnbuild/kiln/targets"
)

// An image whose entrypoint is a #! script (common in images kiln did not
// build): kiln verify must not call it a broken binary; it checks the
// interpreter and whether the image starts.
func TestScriptEntrypoint(t *testing.T) {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs /bin/busybox (Debian package busybox-static)")
	}
	image := func(shebang string) Input {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		add := func(name string, mode int64, data []byte) {
			tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg})
			tw.Write(data)
		}
		add("bin/busybox", 0o755, busybox)
		tw.WriteHeader(&tar.Header{Name: "bin/sh", Linkname: "busybox", Typeflag: tar.TypeSymlink})
		add("entry.sh", 0o755, []byte(shebang+"\necho started\n"))
		tw.Close()
		raw := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
		if err != nil {
			t.Fatal(err)
		}
		img, _ := mutate.AppendLayers(empty.Image, l)
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Config.Entrypoint = []string{"/entry.sh"}
		img, _ = mutate.ConfigFile(img, cf)
		return Input{Image: img, Ref: "script", Platform: targets.Platform{OS: "linux", Arch: "amd64"}, Policy: targets.DefaultPolicy(), Runner: NewRunner()}
	}

	rep, err := Image(context.Background(), image("#!/bin/sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Errorf("a working script image failed: %+v", rep.Failures())
	}
	if f, _ := rep.Find("elf.arch"); f.Status != Skip || !strings.Contains(f.Evidence, "pass --binary") {
		t.Errorf("elf.arch = %+v", f)
	}
	if f, _ := rep.Find("run.start"); f.Status != Pass && (os.Geteuid() == 0 || f.Status != Skip) {
		t.Errorf("run.start = %+v", f)
	}

	rep, err = Image(context.Background(), image("#!/bin/bash -e"))
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := rep.Find("link.interp"); f.Status != Fail || !strings.Contains(f.Evidence, "/bin/bash") {
		t.Errorf("a missing interpreter: link.interp = %+v", f)
	}
	if f, _ := rep.Find("run.start"); f.Status == Pass {
		t.Errorf("run.start passed although /bin/bash is missing: %+v", f)
	}
}
