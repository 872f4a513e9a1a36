package verify

import (
	"slices"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/targets"
)

// The release read from build info picks the rules; a release kiln has
// no rules for gets the nearest one's, flagged.
func TestRulesFor(t *testing.T) {
	tests := []struct {
		version    string
		release    string
		known      bool
		localFirst bool
		android    bool
	}{
		{"go1.21.13", "go1.21", true, true, true},
		{"go1.22.12", "go1.22", true, true, false},
		{"go1.23.0", "go1.23", true, false, false},
		{"go1.26rc1", "go1.26", true, false, false},
		{"go1.26.8", "go1.26", true, false, false},
		{"go1.27.1", "go1.26", false, false, false},
		{"devel go1.27-0123abcd Tue Jan 6 2026", "go1.26", false, false, false},
		{"go1.20.14", "go1.21", false, true, true},
		{"", "go1.26", false, false, false},
		{"gccgo", "go1.26", false, false, false},
	}
	for _, tt := range tests {
		r := rulesFor(tt.version)
		android := slices.Contains(r.certDirs, "/system/etc/security/cacerts")
		if r.release != tt.release || r.known != tt.known || r.localFirst != tt.localFirst || android != tt.android {
			t.Errorf("rulesFor(%q) = %+v", tt.version, r)
		}
		if src := r.source("net/conf.go"); tt.known == strings.Contains(src, "kiln knows") {
			t.Errorf("rulesFor(%q).source = %q", tt.version, src)
		}
	}
}

// A binary of a release kiln has no rules for gets warnings that say so,
// not a verdict made with another release's rules.
func TestUnknownReleaseWarns(t *testing.T) {
	fsys := mustFlatten(t, Limits{}, tarLayer(t, tarFile("etc/nsswitch.conf", "hosts: files dns\n")))
	for _, version := range []string{"go1.27.0", "go1.20.14", "devel go1.27-abc"} {
		s := &subject{fsys: fsys, proc: newProc(fsys, nil), in: Input{Policy: targets.Policy{Resolver: "go"}},
			goInfo: &GoInfo{GoVersion: version, HasFuncTable: true, UsesNet: true, LoadsRoots: true, LoadsZones: true}}
		rep := &Report{}
		s.checkResolver(rep)
		s.checkCerts(rep)
		s.checkTzdata(rep)
		for _, f := range rep.Checks {
			if f.Status != Warn || !strings.Contains(f.Evidence, "kiln does not know") || !strings.Contains(f.Evidence, version) {
				t.Errorf("%s: %s = %s %q, want a warning naming the release", version, f.ID, f.Status, f.Evidence)
			}
		}
	}
}

// FuzzRulesNoPanic feeds the files and strings kiln's rules parse from an
// image (they are untrusted) to every rule at once: none may panic,
// whatever the bytes. The differential fuzz targets hold the answers to
// the real components; this one needs no root and runs anywhere.
func FuzzRulesNoPanic(f *testing.F) {
	f.Add([]byte("options ndots:2 # x\n"), []byte("hosts: files [NOTFOUND=return] dns\n"), []byte("root:x:0:0::/:/bin/sh\n"), "netdns=cgo#1,x=y", "$ORIGIN/../${LIB}:$PLATFORM;x")
	f.Add([]byte("PK\x05\x06"+strings.Repeat("\x00", 18)), []byte("hosts: [\n"), []byte("\n\n#x:y:z\n"), ",,=", "${ORIGIN")
	f.Fuzz(func(t *testing.T, a, b, c []byte, s1, s2 string) {
		fsys := mustFlatten(t, Limits{}, tarLayer(t,
			tarFile("etc/resolv.conf", string(a)), tarFile("etc/nsswitch.conf", string(b)),
			tarFile("etc/passwd", string(c)), tarFile("etc/group", string(a)),
			tarFile("etc/ssl/cert.pem", string(b)), tarFile("z.zip", string(a)),
			tarFile("etc/ld-musl-x86_64.path", s2)))
		p := &proc{fsys: fsys, env: []string{"GODEBUG=" + s1, "ZONEINFO=/z.zip", "SSL_CERT_DIR=" + s2}, uid: 65532, gid: 65532, cwd: "/"}
		g := &GoInfo{GoVersion: s1, CgoEnabled: len(a)%2 == 0, DefaultDebug: s2, HasFuncTable: true, UsesNet: true}
		_ = predictResolver(g, p, s2)
		_ = predictRoots(p, rulesFor(s1), g)
		_, _ = predictZone(p, g, s2)
		_, _ = resolveUser(fsys, s1)
		_, _ = zipEntry(p, "/z.zip", s2)
		_, _ = glibcHeaderCheck(a, "amd64")
		_, _ = muslRunPath(s2, s1)
		_, _ = godebugValue(s1, s2, "netdns")
		sr := newSearcherFor(p, "musl", "amd64", "/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-x86_64.so.1")
		_ = sr.expandDST(s2, &loaded{origin: s1})
		_ = loopbackNameservers(a)
	})
}
