package verify

import (
	"debug/buildinfo"
	"os"
	"testing"
)

// ReadGoInfo reads build info without debug/buildinfo; on a real binary
// (this test binary) it must agree with it.
func TestReadGoInfoMatchesDebugBuildinfo(t *testing.T) {
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	want, err := buildinfo.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	g := ReadGoInfo(data)
	if g == nil {
		t.Fatal("no Go info read from a Go binary")
	}
	if g.GoVersion != want.GoVersion || len(g.Modules) != len(want.Deps) {
		t.Errorf("got %s with %d modules, debug/buildinfo says %s with %d", g.GoVersion, len(g.Modules), want.GoVersion, len(want.Deps))
	}
	if !g.HasFuncTable || !g.UsesNet {
		t.Errorf("the test binary links net (the DNS server): func table %v, net %v", g.HasFuncTable, g.UsesNet)
	}
}

// A crafted file with tens of thousands of section names made debug/elf
// take tens of seconds (the test binary's timeout is the guard; the
// bounded reader answers at once).
func TestReadGoInfoSectionNameBomb(t *testing.T) {
	if g := ReadGoInfo(sectionNameBomb()); g != nil {
		t.Errorf("a file with no build info gave %+v", g)
	}
}
