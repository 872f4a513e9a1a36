package verify

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestGlibcSystemDirs(t *testing.T) {
	debian := "\x00\x00/lib/x86_64-linux-gnu/\x00/usr/lib/x86_64-linux-gnu/\x00/lib/\x00/usr/lib/\x00\x00"
	fallback := []string{"/lib", "/usr/lib"}
	for _, tc := range []struct {
		name, loader string
		want         []string
	}{
		{"debian", "ELF" + debian + "tail", []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}},
		{"first-run-wins", "\x00\x00/lib64/\x00/usr/lib64/\x00\x00" + debian, []string{"/lib64", "/usr/lib64"}},
		{"one-dir-is-no-run", "\x00\x00/opt/lib/\x00\x00", fallback},
		{"not-dirs", "\x00\x00/lib/\x00usr/lib\x00\x00/lib/\x00/a b/lib/\x00\x00", fallback},
		{"no-trailing-name", "\x00\x00/lib/\x00/usr/lib/\x00", fallback},
		{"zeros", strings.Repeat("\x00", 1<<20), fallback},
		{"too-many-dirs", "\x00\x00" + strings.Repeat("/lib/\x00", maxSystemDirs+1) + "\x00", fallback},
	} {
		fsys := mustFlatten(t, Limits{}, tarLayer(t, tarExe("lib/ld.so", tc.loader)))
		if got := glibcSystemDirs(fsys, "/lib/ld.so"); !slices.Equal(got, tc.want) {
			t.Errorf("%s: glibcSystemDirs = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := glibcSystemDirs(mustFlatten(t, Limits{}), "/lib/ld.so"); !slices.Equal(got, fallback) {
		t.Errorf("no loader: glibcSystemDirs = %q, want %q", got, fallback)
	}
}

// A binary with a huge DT_RUNPATH and many DT_NEEDED must not make the
// search as long as their product, nor its finding list every path.
func TestSearchIsBounded(t *testing.T) {
	bin := &ELF{Arch: "amd64", Interp: "/lib/ld.so"}
	for i := range 50_000 {
		bin.RunPath = append(bin.RunPath, fmt.Sprintf("/d%d", i))
	}
	for i := range 100 {
		bin.Needed = append(bin.Needed, fmt.Sprintf("lib%d.so", i))
	}
	s := newSearcher(mustFlatten(t, Limits{}), "glibc", "amd64", "/lib/ld.so", nil)
	g := s.resolve("/app", bin, nil)
	if len(g.missing) != len(bin.Needed) {
		t.Fatalf("%d missing, want %d", len(g.missing), len(bin.Needed))
	}
	if s.tries > maxSearchPaths+len(bin.Needed) {
		t.Errorf("the search tried %d paths, more than %d", s.tries, maxSearchPaths)
	}
	if !strings.Contains(g.missing[0], "searched /d0/lib0.so, /d1/lib0.so,") || !strings.HasSuffix(g.missing[0], ", …") {
		t.Errorf("first finding = %.200q…, want the first places searched and an ellipsis", g.missing[0])
	}
	if last := g.missing[len(g.missing)-1]; !strings.Contains(last, "gave up") {
		t.Errorf("last finding = %.200q, want the search given up", last)
	}
	size := 0
	for _, m := range g.missing {
		size += len(m)
	}
	if size > 1<<20 {
		t.Errorf("the findings list %d bytes of places searched", size)
	}
}

// A link graph larger than the search loads is a finding, not a pass: the
// libraries it never looked up could be missing.
func TestLinkGraphCapIsAFinding(t *testing.T) {
	needTool(t, "gcc")
	dir := t.TempDir()
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-x", "c", "-o", dir+"/lib.so", "-", "-nostdlib").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	so, err := os.ReadFile(dir + "/lib.so")
	if err != nil {
		t.Fatal(err)
	}
	bin := &ELF{Arch: "amd64", Interp: "/lib/ld.so"}
	var ents []tarEnt
	for i := range maxObjects + 5 {
		name := fmt.Sprintf("lib%d.so", i)
		bin.Needed = append(bin.Needed, name)
		ents = append(ents, tarFile("lib/"+name, string(so)))
	}
	s := newSearcher(mustFlatten(t, Limits{}, tarLayer(t, ents...)), "glibc", "amd64", "/lib/ld.so", []string{"LD_LIBRARY_PATH=/lib"})
	g := s.resolve("/app", bin, nil)
	if len(g.missing) != 1 || !strings.Contains(g.missing[0], "were not looked up") {
		t.Fatalf("missing = %q, want one finding that the graph was cut short", g.missing)
	}
}
