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
	image := func(shebang string) Input { return scriptImage(t, shebang+"\necho started\n") }

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

// A binary that exits while a process it started in a session of its own
// still holds its stdout: the run must end with the binary, not wait for
// the pipe (and the sandbox's overall limit) and then report nothing.
func TestRunOutlivedByDetachedChild(t *testing.T) {
	f := runStart(t, "#!/bin/sh\n/bin/busybox setsid /bin/busybox sleep 60 &\necho started\n")
	if f.Status != Pass || !strings.Contains(f.Evidence, "exited 0: started") {
		t.Errorf("run.start = %+v, want a pass: the script exited 0", f)
	}
}

// The image's binary must not inherit the sandbox init's pipes to kiln:
// with the result pipe it could write its own report.
func TestRunDoesNotInheritThePipes(t *testing.T) {
	f := runStart(t, "#!/bin/sh\nfor fd in 3 4; do [ -e /proc/self/fd/$fd ] && echo fd $fd is open && exit 1; done\necho started\n")
	if f.Status != Pass {
		t.Errorf("run.start = %+v", f)
	}
}

// The image's binary, root in its namespaces, must not reach the host's
// files: through /proc/1/root (the sandbox init's root) a chroot alone
// shows the host's / (this image has no /usr; the host has).
func TestRunCannotReachTheHost(t *testing.T) {
	if _, err := os.Stat("/usr"); err != nil {
		t.Skip("the host has no /usr to look for")
	}
	f := runStart(t, "#!/bin/sh\nfor p in /proc/1/root/usr /proc/1/cwd/usr; do [ -e $p ] && echo $p is the host && exit 1; done\necho started\n")
	if f.Status != Pass {
		t.Errorf("run.start = %+v", f)
	}
}

// dns_load keeps only what it measures: runs of a chatty binary must not
// overflow the sandbox's report (64 MiB) and lose the whole measurement.
func TestDNSLoadOfAChattyBinary(t *testing.T) {
	in := scriptImage(t, `#!/bin/sh
[ -z "$1" ] && echo started && exit 0
echo "go package net: using the Go DNS resolver" >&2
/bin/busybox nslookup "$1" 127.0.0.1 >/dev/null || exit 2
/bin/busybox head -c 200000 /dev/zero
`)
	in.Policy.LookupArgs = []string{"{name}"}
	in.Policy.DNSLoad = 200
	rep, err := Image(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := rep.Find("run.resolver")
	if os.Geteuid() != 0 && f.Status == Skip {
		t.Skipf("no sandbox here: %s", f.Evidence)
	}
	if f.Status != Pass {
		t.Fatalf("run.resolver = %+v", f)
	}
	if rep.DNSLoad == nil || rep.DNSLoad.Lookups != 200 || rep.DNSLoad.Succeeded != 200 {
		t.Errorf("DNSLoad = %+v, want 200 lookups, all succeeded", rep.DNSLoad)
	}
}

// scriptImage is an amd64 image of busybox's shell whose entrypoint is the
// script /entry.sh.
// runStart verifies a script image and returns its run.start finding,
// skipping when this machine has no sandbox (CI has one: it runs as root).
func runStart(t *testing.T, script string) Finding {
	t.Helper()
	rep, err := Image(context.Background(), scriptImage(t, script))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := rep.Find("run.start")
	if os.Geteuid() != 0 && f.Status == Skip {
		t.Skipf("no sandbox here: %s", f.Evidence)
	}
	return f
}

func scriptImage(t *testing.T, script string) Input {
	t.Helper()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs /bin/busybox (Debian package busybox-static)")
	}
	l := tarLayer(t, tarExe("bin/busybox", string(busybox)), tarSymlink("bin/sh", "busybox"), tarExe("entry.sh", script))
	img, _ := mutate.AppendLayers(empty.Image, l)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/entry.sh"}
	img, _ = mutate.ConfigFile(img, cf)
	return Input{Image: img, Ref: "script", Platform: targets.Platform{OS: "linux", Arch: "amd64"}, Policy: targets.DefaultPolicy(), Runner: NewRunner()}
}
