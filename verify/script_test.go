package verify

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

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
		l := tarLayer(t, tarExe("bin/busybox", string(busybox)), tarSymlink("bin/sh", "busybox"),
			tarExe("entry.sh", shebang+"\necho started\n"))
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
