package verify

import (
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
