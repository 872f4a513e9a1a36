package testbase

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestLDCacheLibcmp(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		sign int
	}{
		{"libc.so.6", "libc.so.6", 0},
		{"libc.so.10", "libc.so.9", 1},
		{"libfoo007.so", "libfoo7.so", 0},
		{"libm.so.6", "libc.so.6", 1},
		{"lib2.so", "liba.so", 1},
		{"liba.so", "lib2.so", -1},
		{"libc.so", "libc.so.6", -1},
		{"libc.so.6", "libc.so", 1},
		{"libc.so.6", "libc.so.", 1},
		{"libA.so", "liba.so", -1},
		{"", "", 0},
	} {
		got := ldCacheLibcmp(tc.a, tc.b)
		if (got > 0) != (tc.sign > 0) || (got < 0) != (tc.sign < 0) {
			t.Errorf("ldCacheLibcmp(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.sign)
		}
	}
}

func TestLDCacheRoundTrip(t *testing.T) {
	in := []ldCacheEntry{
		{Soname: "libc.so.6", Path: "/lib/aarch64-linux-gnu/libc.so.6", Flags: 0x0a03},
		{Soname: "libfoo.so.1", Path: "/opt/lib/libfoo.so.1.2.3", Flags: 0x0a03},
		{Soname: "libm.so.6", Path: "/lib/aarch64-linux-gnu/libm.so.6", Flags: 0x0a03},
	}
	got, err := parseLDCache(buildLDCache(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ldCacheEntry{in[2], in[1], in[0]}
	if !slices.Equal(got, want) {
		t.Errorf("round trip: got %+v, want %+v", got, want)
	}
}

// TestLDCacheMatchesLdconfig has the host's ldconfig and buildLDCache
// index the same shared objects, with names chosen to exercise the sort
// order, and expects the same entries in the same order.
func TestLDCacheMatchesLdconfig(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		missingTool(t, "no C compiler (cc) to build test libraries: apt-get install -y gcc")
	}
	if _, err := findLDConfig(); err != nil {
		missingTool(t, err.Error())
	}
	src := filepath.Join(t.TempDir(), "empty.c")
	if err := os.WriteFile(src, []byte("int kiln_testbase;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := rootfs{}
	var entries []ldCacheEntry
	for _, name := range []string{"libfoo.so.1", "libfoo.so.10", "libfoo.so.9", "libfoo2.so.1", "libfooa.so.1",
		"libFOO.so.1", "libfoo-1.2.so", "libfoo_bar.so.0", "libz.so.1", "liba.so.1", "libfoo.so.1.2"} {
		out := filepath.Join(t.TempDir(), name)
		if b, err := exec.Command(cc, "-shared", "-fPIC", "-Wl,-soname,"+name, "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		p := "/usr/lib/kiln/" + name
		fs.file(p, modeExec, b)
		e, err := ldCacheEntryFor(p, b)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	fs.file("/etc/ld.so.conf", modeFile, []byte("/usr/lib/kiln\n"))

	ref, err := hostLDConfig(fs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseLDCache(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(entries) {
		t.Fatalf("ldconfig indexed %d of the %d libraries: %+v", len(want), len(entries), want)
	}
	got, err := parseLDCache(buildLDCache(entries))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("buildLDCache disagrees with ldconfig:\n got  %+v\n want %+v", got, want)
	}
}

func FuzzParseLDCache(f *testing.F) {
	f.Add(buildLDCache([]ldCacheEntry{{Soname: "libc.so.6", Path: "/lib/libc.so.6", Flags: 0x0303}}))
	f.Add([]byte(ldCacheMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseLDCache(b)
		if err != nil {
			return
		}
		if _, err := parseLDCache(buildLDCache(entries)); err != nil {
			t.Errorf("re-encoding parsed entries: %v", err)
		}
	})
}
