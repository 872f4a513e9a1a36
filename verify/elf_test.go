package verify

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	staticProgram = "package main\n\nfunc main() { println(\"hi\") }\n"
	cgoProgram    = `package main

// #cgo LDFLAGS: -lm
// #include <math.h>
import "C"

import "fmt"

func main() { fmt.Println(C.sqrt(2)) }
`
	hostLibc = "/lib/x86_64-linux-gnu/libc.so.6"
)

// goBuild compiles src as a main package with only the env given on top
// of PATH and the caches, and returns the binary's bytes.
func goBuild(t testing.TB, src string, env ...string) []byte {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/prog\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off", "GOPROXY=off"}
	for _, k := range []string{"GOCACHE", "GOPATH", "GOMODCACHE", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", env, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not on PATH; install it to run this case", name)
	}
}

func mustReadELF(t *testing.T, b []byte) *ELF {
	t.Helper()
	e, err := ReadELF(b)
	if err != nil {
		t.Fatalf("ReadELF: %v", err)
	}
	return e
}

func TestReadELFStaticGo(t *testing.T) {
	bin := goBuild(t, staticProgram, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if _, err := ReadELF(bin[:4096]); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("ReadELF of the first 4 KiB = %v, want a truncation error", err)
	}
	e := mustReadELF(t, bin)
	if !e.Static || e.Interp != "" || len(e.Needed) != 0 {
		t.Errorf("static Go binary: Static=%v Interp=%q Needed=%v", e.Static, e.Interp, e.Needed)
	}
	if e.Arch != "amd64" || e.Machine != elf.EM_X86_64 || e.Class != elf.ELFCLASS64 || e.Type != elf.ET_EXEC {
		t.Errorf("got %s %v %v %v", e.Arch, e.Machine, e.Class, e.Type)
	}
}

func TestReadELFCrossArch(t *testing.T) {
	for _, tc := range []struct {
		goarch, want string
		machine      elf.Machine
	}{
		{"arm64", "arm64", elf.EM_AARCH64},
		{"arm", "arm", elf.EM_ARM},
		{"386", "386", elf.EM_386},
		{"ppc64le", "ppc64le", elf.EM_PPC64},
		{"s390x", "s390x", elf.EM_S390},
		{"riscv64", "riscv64", elf.EM_RISCV},
	} {
		t.Run(tc.goarch, func(t *testing.T) {
			e := mustReadELF(t, goBuild(t, staticProgram, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tc.goarch))
			if e.Arch != tc.want || e.Machine != tc.machine || !e.Static {
				t.Errorf("GOARCH=%s: Arch=%q Machine=%v Static=%v", tc.goarch, e.Arch, e.Machine, e.Static)
			}
		})
	}
}

func TestReadELFCgoGlibc(t *testing.T) {
	needTool(t, "gcc")
	e := mustReadELF(t, goBuild(t, cgoProgram, "CGO_ENABLED=1", "CC=gcc", "GOARCH=amd64"))
	if e.Static || e.Interp != "/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("Static=%v Interp=%q", e.Static, e.Interp)
	}
	if !slices.Contains(e.Needed, "libc.so.6") {
		t.Errorf("Needed = %v, want libc.so.6", e.Needed)
	}
	if len(e.VersionNeeds["libc.so.6"]) == 0 {
		t.Errorf("VersionNeeds = %v, want versions from libc.so.6", e.VersionNeeds)
	}
	for lib, vs := range e.VersionNeeds {
		if !slices.IsSorted(vs) {
			t.Errorf("VersionNeeds[%s] not sorted: %v", lib, vs)
		}
	}
	t.Logf("Needed=%v VersionNeeds=%v", e.Needed, e.VersionNeeds)
}

func TestReadELFCgoMusl(t *testing.T) {
	needTool(t, "musl-gcc")
	e := mustReadELF(t, goBuild(t, cgoProgram, "CGO_ENABLED=1", "CC=musl-gcc", "GOARCH=amd64"))
	if e.Interp != "/lib/ld-musl-x86_64.so.1" || e.Static {
		t.Errorf("Interp=%q Static=%v, want /lib/ld-musl-x86_64.so.1", e.Interp, e.Static)
	}
	t.Logf("Needed=%v", e.Needed)
}

func TestReadELFCgoArm64(t *testing.T) {
	needTool(t, "aarch64-linux-gnu-gcc")
	e := mustReadELF(t, goBuild(t, cgoProgram, "CGO_ENABLED=1", "CC=aarch64-linux-gnu-gcc", "GOARCH=arm64"))
	if e.Arch != "arm64" || e.Interp != "/lib/ld-linux-aarch64.so.1" || !slices.Contains(e.Needed, "libc.so.6") {
		t.Errorf("Arch=%q Interp=%q Needed=%v", e.Arch, e.Interp, e.Needed)
	}
}

func TestReadELFStaticPIE(t *testing.T) {
	needTool(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.c")
	if err := os.WriteFile(src, []byte("#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-static-pie", "-static"} {
		out := filepath.Join(dir, "hello"+flag)
		if b, err := exec.Command("gcc", flag, "-o", out, src).CombinedOutput(); err != nil {
			t.Skipf("gcc %s failed (static glibc not installed?): %v\n%s", flag, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		e := mustReadELF(t, b)
		if !e.Static || e.Interp != "" || len(e.Needed) != 0 {
			t.Errorf("gcc %s: Static=%v Interp=%q Needed=%v", flag, e.Static, e.Interp, e.Needed)
		}
	}
}

func TestReadELFHostLibc(t *testing.T) {
	b, err := os.ReadFile(hostLibc)
	if err != nil {
		t.Skipf("no host glibc at %s: %v", hostLibc, err)
	}
	e := mustReadELF(t, b)
	if e.SOName != "libc.so.6" {
		t.Errorf("SOName = %q", e.SOName)
	}
	if !slices.Contains(e.VersionDefs, "GLIBC_2.34") || !slices.Contains(e.VersionDefs, "GLIBC_2.2.5") {
		t.Errorf("VersionDefs = %v, want GLIBC_2.2.5 and GLIBC_2.34", e.VersionDefs)
	}
	if slices.Contains(e.VersionDefs, "libc.so.6") {
		t.Error("VersionDefs holds the base (file name) entry")
	}
	if !slices.IsSorted(e.VersionDefs) {
		t.Errorf("VersionDefs not sorted: %v", e.VersionDefs)
	}
	max := MaxGlibcVersion(e.VersionDefs)
	if CompareGlibc(max, "GLIBC_2.34") < 0 {
		t.Errorf("MaxGlibcVersion = %q, want >= GLIBC_2.34", max)
	}
	t.Logf("host glibc: %s", max)
}

func TestReadELFMalformed(t *testing.T) {
	good, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Skip("no /usr/bin/true to start from")
	}
	mustReadELF(t, good)

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic only", []byte("\x7fELF")},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000)},
		{"header only", good[:64]},
		{"bad interp", patchInterp(t, good, func(b []byte) { b[len(b)-1] = 'x' })},
		{"empty interp", patchInterp(t, good, func(b []byte) { b[0] = 0 })},
		{"needed out of range", patchDyn(t, good, elf.DT_NEEDED, 0xffffffff)},
		{"strtab out of range", patchDyn(t, good, elf.DT_STRTAB, 0xffffffff0)},
		{"verneed out of range", patchDyn(t, good, elf.DT_VERNEED, 0xffffffff0)},
		{"verneed chain out of range", patchVerneed(t, good, func(r []byte) { binary.LittleEndian.PutUint32(r[12:], 0x7fffffff) })},
		{"vernaux out of range", patchVerneed(t, good, func(r []byte) { binary.LittleEndian.PutUint32(r[8:], 0x7fffffff) })},
		{"verneed version 2", patchVerneed(t, good, func(r []byte) { binary.LittleEndian.PutUint16(r, 2) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ReadELF(tc.data)
			if err == nil || !strings.HasPrefix(err.Error(), "malformed ELF") {
				t.Errorf("ReadELF = %+v, %v; want a malformed ELF error", e, err)
			}
		})
	}

	// Every truncation into the loaded segments fails, from the headers
	// alone; past them only section headers and unloaded sections go,
	// which the loader never reads. None panics.
	f, err := elf.NewFile(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	var loadEnd uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			loadEnd = max(loadEnd, p.Off+p.Filesz)
		}
	}
	for n := 0; n < len(good); n += 61 {
		if _, err := readELFNoRecover(good[:n]); (err == nil) != (uint64(n) >= loadEnd) {
			t.Errorf("truncated to %d bytes (segments end at %d): error %v", n, loadEnd, err)
		}
	}
}

// readELFNoRecover is the parser without ReadELF's last-resort recover, so
// a panic in kiln's own code fails the test instead of becoming an error.
func readELFNoRecover(b []byte) (*ELF, error) { return readELF(b) }

// patchVerneed lets patch change the first Elf_Verneed record (64-bit
// little-endian objects only).
func patchVerneed(t *testing.T, good []byte, patch func(rec []byte)) []byte {
	t.Helper()
	b := slices.Clone(good)
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	vn, _ := f.DynValue(elf.DT_VERNEED)
	if len(vn) == 0 {
		t.Skip("no DT_VERNEED to patch")
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && vn[0] >= p.Vaddr && vn[0]-p.Vaddr < p.Filesz {
			patch(b[p.Off+vn[0]-p.Vaddr:])
			return b
		}
	}
	t.Fatal("DT_VERNEED not in a PT_LOAD")
	return nil
}

func TestReadELFVerneedWithoutVersions(t *testing.T) {
	good, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Skip("no /usr/bin/true to start from")
	}
	// vn_cnt = 0: libc.so.6 is named, no version is needed from it.
	e := mustReadELF(t, patchVerneed(t, good, func(r []byte) { binary.LittleEndian.PutUint16(r[2:], 0) }))
	if vs, ok := e.VersionNeeds["libc.so.6"]; ok {
		t.Errorf("VersionNeeds[libc.so.6] = %q, want no entry", vs)
	}
}

func patchInterp(t *testing.T, good []byte, patch func([]byte)) []byte {
	t.Helper()
	b := slices.Clone(good)
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			patch(b[p.Off : p.Off+p.Filesz])
			return b
		}
	}
	t.Fatal("no PT_INTERP")
	return nil
}

// patchDyn sets the value of the first tag entry of PT_DYNAMIC (64-bit
// little-endian objects only).
func patchDyn(t *testing.T, good []byte, tag elf.DynTag, val uint64) []byte {
	t.Helper()
	b := slices.Clone(good)
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		t.Skip("patching needs a 64-bit little-endian binary")
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_DYNAMIC {
			continue
		}
		for off := p.Off; off+16 <= p.Off+p.Filesz; off += 16 {
			if elf.DynTag(binary.LittleEndian.Uint64(b[off:])) == tag {
				binary.LittleEndian.PutUint64(b[off+8:], val)
				return b
			}
		}
	}
	t.Fatalf("no %v in PT_DYNAMIC", tag)
	return nil
}

func TestCompareGlibc(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"GLIBC_2.9", "GLIBC_2.34", -1},
		{"GLIBC_2.34", "GLIBC_2.9", 1},
		{"GLIBC_2.2.5", "GLIBC_2.3", -1},
		{"GLIBC_2.3.4", "GLIBC_2.3", 1},
		{"GLIBC_2.2", "GLIBC_2.2.0", 0},
		{"2.34", "GLIBC_2.34", 0},
		{"GLIBC_PRIVATE", "GLIBC_2.2.5", -1},
		{"GLIBC_2.2.5", "GLIBC_PRIVATE", 1},
		{"GLIBC_PRIVATE", "GLIBC_PRIVATE", 0},
		{"GLIBC_2.x", "GLIBC_2.1", -1},
		{"GLIBC_2.99999999999999999999", "GLIBC_2.1", -1},
	} {
		if got := CompareGlibc(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareGlibc(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestMaxGlibcVersion(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"GLIBC_PRIVATE", "GLIBCXX_3.4.30", "CXXABI_1.3"}, ""},
		{[]string{"GLIBC_2.2.5", "GLIBC_2.9", "GLIBC_2.34", "GLIBC_2.17", "GLIBC_PRIVATE", "GLIBC_ABI_DT_RELR"}, "GLIBC_2.34"},
		{[]string{"GLIBC_2.3.4", "GLIBC_2.3"}, "GLIBC_2.3.4"},
		{[]string{"2.40", "GLIBC_2.3"}, "GLIBC_2.3"}, // only GLIBC_ names count
	} {
		if got := MaxGlibcVersion(tc.in); got != tc.want {
			t.Errorf("MaxGlibcVersion(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestReadELFAgreesWithDebugELF reads every ELF object in the host's
// /usr/bin and library directory both ways: ReadELF through the program
// headers, debug/elf through the section headers. On trusted, well-formed
// files the two must agree.
func TestReadELFAgreesWithDebugELF(t *testing.T) {
	var files []string
	for _, pattern := range []string{"/usr/bin/*", "/lib/x86_64-linux-gnu/*.so*", "/usr/lib/x86_64-linux-gnu/*/*.so*", "/usr/aarch64-linux-gnu/lib/*.so*", "/usr/lib/musl/lib/*.so*", "/lib/ld-musl-*.so.1"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	checked := 0
	for _, p := range files {
		if checked == 3000 {
			break
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			continue
		}
		checked++
		e, err := ReadELF(data)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		want := debugELF(f)
		got := fmt.Sprintf("%v %v %s %q %q %q %q %q %v %v", e.Class, e.Machine, e.Type, e.Interp, e.Needed, e.RPath, e.RunPath, e.SOName, e.VersionNeeds, e.VersionDefs)
		if got != want {
			t.Errorf("%s:\nReadELF   %s\ndebug/elf %s", p, got, want)
		}
	}
	if checked == 0 {
		t.Skip("no ELF files found on this host")
	}
	t.Logf("%d ELF files agree", checked)
}

func debugELF(f *elf.File) string {
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, _ := io.ReadAll(p.Open())
			interp = strings.TrimRight(string(b), "\x00")
			break
		}
	}
	dyn := func(tag elf.DynTag, split bool) []string {
		vs, _ := f.DynString(tag)
		if !split {
			return vs
		}
		var out []string
		for _, v := range vs {
			out = append(out, strings.Split(v, ":")...)
		}
		return out
	}
	soname := ""
	if s := dyn(elf.DT_SONAME, false); len(s) > 0 {
		soname = s[0]
	}
	var needs map[string][]string
	if vn, err := f.DynamicVersionNeeds(); err == nil && len(vn) > 0 {
		needs = map[string][]string{}
		for _, n := range vn {
			for _, d := range n.Needs {
				if !slices.Contains(needs[n.Name], d.Dep) {
					needs[n.Name] = append(needs[n.Name], d.Dep)
				}
			}
			slices.Sort(needs[n.Name])
		}
	}
	var defs []string
	if vd, err := f.DynamicVersions(); err == nil {
		for _, d := range vd {
			if d.Flags&elf.VER_FLG_BASE == 0 && !slices.Contains(defs, d.Name) {
				defs = append(defs, d.Name)
			}
		}
		slices.Sort(defs)
	}
	return fmt.Sprintf("%v %v %s %q %q %q %q %q %v %v", f.Class, f.Machine, f.Type, interp, dyn(elf.DT_NEEDED, false), dyn(elf.DT_RPATH, true), dyn(elf.DT_RUNPATH, true), soname, needs, defs)
}

// TestReadELFSectionNameBomb is a 2 MB file with 16,000 sections whose
// names all start at the same 1 MB string: debug/elf.NewFile spends about
// 20 s on it. ReadELF never looks at sections.
func TestReadELFSectionNameBomb(t *testing.T) {
	b := sectionNameBomb()
	e, err := ReadELF(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Arch != "amd64" || !e.Static {
		t.Errorf("got %+v", e)
	}
}

// sectionNameBomb is an ELF file with 16000 section headers all naming one
// 1 MiB string.
func sectionNameBomb() []byte {
	const shnum, strsz, shoff = 16000, 1 << 20, 64
	stroff := shoff + shnum*64
	b := make([]byte, stroff+strsz)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], shoff)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[58:], 64)
	le.PutUint16(b[60:], shnum)
	le.PutUint16(b[62:], 1)
	le.PutUint32(b[shoff+64+4:], uint32(elf.SHT_STRTAB))
	le.PutUint64(b[shoff+64+24:], uint64(stroff))
	le.PutUint64(b[shoff+64+32:], strsz)
	for i := stroff; i < len(b)-1; i++ {
		b[i] = 'A'
	}
	return b
}
