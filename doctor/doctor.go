// Package doctor says which toolchains, runtimes and sandbox features this
// machine has and what each enables: `kiln doctor`. It only looks (PATH,
// npm's global root, a sandbox probe, the container runtimes' version
// commands); it decides nothing for a release, which gathers its own facts
// (build.Prepare), and it never prints.
package doctor

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// Tool is one thing kiln can use on this machine: what it is, whether it
// is here, what it enables and how to get it.
type Tool struct {
	Name    string `json:"name"`
	Found   string `json:"found"` // path or version; "" when missing
	Enables string `json:"enables"`
	Install string `json:"install,omitempty"`
}

// Check looks for every toolchain and runtime kiln can use.
func Check(ctx context.Context) []Tool {
	var tools []Tool
	add := func(name, enables, install string, found string) {
		tools = append(tools, Tool{Name: name, Found: found, Enables: enables, Install: install})
	}
	look := func(name string) string {
		p, err := targets.LookTool(name)
		if err != nil {
			return ""
		}
		return p
	}
	goVersion := ""
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	add("go", "every build", "https://go.dev/dl", goVersion)
	host := runtime.GOARCH
	for _, pl := range []string{"linux/amd64", "linux/arm64"} {
		p, _ := targets.ParsePlatform(pl)
		for _, libc := range []targets.Libc{targets.LibcGlibc, targets.LibcMusl} {
			tc, err := targets.ChooseToolchain(libc, p, host, "")
			if err != nil {
				continue
			}
			found := ""
			if path := look(tc.Command()); path != "" {
				found = strings.Join(append([]string{path}, strings.Fields(tc.CC)[1:]...), " ")
			}
			add(filepath.Base(tc.Command()), "libc: "+string(libc)+" on "+pl, tc.Source, found)
		}
	}
	for _, q := range []struct{ arch, bin string }{{"arm64", "qemu-aarch64-static"}, {"amd64", "qemu-x86_64-static"}} {
		if q.arch != host {
			add(q.bin, "run.* checks of linux/"+q.arch+" images", "Debian package qemu-user-static", look(q.bin))
		}
	}
	sandbox := "user, mount, pid and network namespaces"
	if why := verify.SandboxCheck(ctx); why != "" {
		sandbox = ""
		add("sandbox", "run.start and run.resolver (they are skipped without it)", "allow user namespaces: "+why, sandbox)
	} else {
		add("sandbox", "run.start and run.resolver", "", sandbox)
	}
	for _, rt := range []struct{ name, install string }{{"docker", "Debian package docker.io, with its engine running"}, {"podman", "Debian package podman"}} {
		found := ""
		if r, err := build.FindRuntime(ctx, rt.name); err == nil {
			found = r.Path
		}
		add(rt.name, "builder: container", rt.install, found)
	}
	return tools
}
