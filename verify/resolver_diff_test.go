package verify

import (
	"archive/tar"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// resolverProbes are the probe builds the resolver table runs: every
// toolchain without cgo, against glibc and against musl, and this
// machine's Go with the netgo and netcgo tags and with netdns=cgo
// compiled in as a //go:debug default.
func resolverProbes() []probeKind {
	var ks []probeKind
	for _, tc := range diffToolchains {
		for _, libc := range []string{"none", "glibc", "musl"} {
			ks = append(ks, probeKind{toolchain: tc, libc: libc})
		}
	}
	return append(ks,
		probeKind{toolchain: "local", libc: "glibc", tags: "netgo"},
		probeKind{toolchain: "local", libc: "glibc", tags: "netcgo"},
		probeKind{toolchain: "local", libc: "glibc", tags: "kilndebugcgo"},
		probeKind{toolchain: "go1.22.12", libc: "glibc", tags: "kilndebugcgo"},
	)
}

// resolverInput is one image for the resolver: its environment, the files
// net reads, who runs, and the name looked up.
type resolverInput struct {
	env   []string
	files []hent
	uid   int
	host  string
}

func resolvConfFile(content string) hent { return hfile("etc/resolv.conf", 0o644, content) }
func nssFile(content string) hent        { return hfile("etc/nsswitch.conf", 0o644, content) }

// resolverTable is the hand-written input of the resolver's differential
// test: the rules of net/conf.go, nss.go, dnsconfig_unix.go and
// internal/godebug, their odd corners, and every disagreement fuzzing
// found (marked "found:").
var resolverTable = []struct {
	name string
	in   resolverInput
}{
	{"no files", resolverInput{}},
	{"files dns", resolverInput{files: []hent{nssFile("hosts: files dns\n")}}},
	{"dns files", resolverInput{files: []hent{nssFile("hosts: dns files\n")}}},
	{"files only", resolverInput{files: []hent{nssFile("hosts: files\n")}}},
	{"dns only", resolverInput{files: []hent{nssFile("hosts: dns\n")}}},
	{"ldap", resolverInput{files: []hent{nssFile("hosts: files ldap dns\n")}}},
	{"ldap after dns", resolverInput{files: []hent{nssFile("hosts: files dns ldap\n")}}},
	{"only ldap", resolverInput{files: []hent{nssFile("hosts: ldap\n")}}},
	{"myhostname", resolverInput{files: []hent{nssFile("hosts: files myhostname dns\n")}}},
	{"mdns4_minimal", resolverInput{files: []hent{nssFile("hosts: files mdns4_minimal [NOTFOUND=return] dns\n")}}},
	{"mdns_minimal", resolverInput{files: []hent{nssFile("hosts: files mdns_minimal [NOTFOUND=return] dns\n")}}},
	{"mdns with mdns.allow", resolverInput{files: []hent{nssFile("hosts: files mdns4 dns\n"), hfile("etc/mdns.allow", 0o644, ".local\n")}}},
	{"mdns with a dangling mdns.allow", resolverInput{files: []hent{nssFile("hosts: files mdns4 dns\n"), hlink("etc/mdns.allow", "/nowhere")}}},
	{"mdns with a looping mdns.allow", resolverInput{files: []hent{nssFile("hosts: files mdns4 dns\n"), hlink("etc/mdns.allow", "mdns.allow")}}},
	{"only mdns", resolverInput{files: []hent{nssFile("hosts: mdns4\n")}}},
	{"mdns for a .local name", resolverInput{files: []hent{nssFile("hosts: files mdns4 dns\n")}, host: "printer.local"}},
	{".local without mdns", resolverInput{files: []hent{nssFile("hosts: files dns\n")}, host: "printer.LOCAL"}},
	{".local, no nsswitch.conf", resolverInput{host: "printer.local."}},
	{"backslash in the name", resolverInput{host: `a\b.test`}},
	{"negated criterion", resolverInput{files: []hent{nssFile("hosts: files dns [!UNAVAIL=return]\n")}}},
	{"criterion on files", resolverInput{files: []hent{nssFile("hosts: files [SUCCESS=continue] dns\n")}}},
	{"default criterion restated", resolverInput{files: []hent{nssFile("hosts: files dns [NOTFOUND=return]\n")}}},
	{"criteria case", resolverInput{files: []hent{nssFile("hosts: files [success=RETURN] dns [NotFound=Return]\n")}}},
	{"criteria with a tab", resolverInput{files: []hent{nssFile("hosts: files dns [NOTFOUND=return\tSUCCESS=return]\n")}}},
	{"criteria glued to the source", resolverInput{files: []hent{nssFile("hosts: files dns[NOTFOUND=return]\n")}}},
	{"unclosed criteria", resolverInput{files: []hent{nssFile("hosts: files dns [NOTFOUND=return\n")}}},
	{"short criterion", resolverInput{files: []hent{nssFile("hosts: files [a=] dns\n")}}},
	{"sources split by a tab", resolverInput{files: []hent{nssFile("hosts:\tfiles\tdns\n")}}},
	{"line without a colon", resolverInput{files: []hent{nssFile("hosts: files dns\nbogus\n")}}},
	{"commented ldap", resolverInput{files: []hent{nssFile("hosts: files dns # ldap\n#hosts: ldap\n")}}},
	{"two hosts lines add up", resolverInput{files: []hent{nssFile("hosts: files dns\nhosts: ldap\n")}}},
	{"empty hosts line", resolverInput{files: []hent{nssFile("passwd: files\nhosts:\n")}}},
	{"HOSTS is another database", resolverInput{files: []hent{nssFile("HOSTS: ldap\n")}}},
	{"nsswitch.conf CRLF", resolverInput{files: []hent{nssFile("hosts: files dns\r\n")}}},
	{"nsswitch.conf unreadable by the user", resolverInput{files: []hent{{path: "etc/nsswitch.conf", mode: 0o600, data: []byte("hosts: files dns\n")}}, uid: 65532}},
	{"nsswitch.conf unreadable, as root", resolverInput{files: []hent{{path: "etc/nsswitch.conf", mode: 0o000, data: []byte("hosts: files dns\n")}}}},
	{"nsswitch.conf is a directory", resolverInput{files: []hent{hdir("etc/nsswitch.conf", 0o755)}}},
	{"nsswitch.conf dangling", resolverInput{files: []hent{hlink("etc/nsswitch.conf", "/run/nsswitch.conf")}}},
	{"resolv.conf known options", resolverInput{files: []hent{resolvConfFile("nameserver 10.0.0.1\noptions ndots:2 timeout:1 attempts:3 rotate edns0 trust-ad\n")}}},
	{"resolv.conf unknown option", resolverInput{files: []hent{resolvConfFile("nameserver 10.0.0.1\noptions inet6\n")}}},
	{"resolv.conf unknown keyword", resolverInput{files: []hent{resolvConfFile("sortlist 10.0.0.0\n")}}},
	{"resolv.conf comment after options", resolverInput{files: []hent{resolvConfFile("options ndots:2 # from the platform\n")}}},
	{"resolv.conf comment after nameserver", resolverInput{files: []hent{resolvConfFile("nameserver 10.0.0.1 # dc\n")}}},
	{"resolv.conf indented comment", resolverInput{files: []hent{resolvConfFile("  # managed by kiln\nnameserver 10.0.0.1\n")}}},
	{"resolv.conf ; comment", resolverInput{files: []hent{resolvConfFile("; old style\nsearch a.example b.example\n")}}},
	{"resolv.conf vertical tab", resolverInput{files: []hent{resolvConfFile("options\vndots:1\n")}}},
	{"resolv.conf CRLF", resolverInput{files: []hent{resolvConfFile("options ndots:1\r\nnameserver 10.0.0.1\r\n")}}},
	{"resolv.conf line past 64 KiB", resolverInput{files: []hent{resolvConfFile("search " + strings.Repeat("a", 70<<10) + "\noptions bogus\n")}}},
	{"resolv.conf unreadable by the user", resolverInput{files: []hent{{path: "etc/resolv.conf", mode: 0o600, data: []byte("options bogus\n")}}, uid: 65532}},
	{"resolv.conf is a directory", resolverInput{files: []hent{hdir("etc/resolv.conf", 0o755)}}},
	{"resolv.conf dangling (systemd stub)", resolverInput{files: []hent{hlink("etc/resolv.conf", "/run/systemd/resolve/stub-resolv.conf")}}},
	{"resolv.conf loop", resolverInput{files: []hent{hlink("etc/resolv.conf", "resolv.conf")}}},
	{"resolv.conf not a directory on the way", resolverInput{files: []hent{hfile("etc/hosts", 0o644, ""), hlink("etc/resolv.conf", "hosts/resolv.conf")}}},
	{"GODEBUG netdns=go beats ldap", resolverInput{env: []string{"GODEBUG=netdns=go"}, files: []hent{nssFile("hosts: files ldap dns\n")}}},
	{"GODEBUG netdns=cgo", resolverInput{env: []string{"GODEBUG=netdns=cgo"}}},
	{"GODEBUG netdns=cgo+1", resolverInput{env: []string{"GODEBUG=netdns=cgo+1"}}},
	{"GODEBUG 1+cgo", resolverInput{env: []string{"GODEBUG=netdns=1+cgo"}}},
	{"GODEBUG go+cgo", resolverInput{env: []string{"GODEBUG=netdns=go+cgo"}}},
	{"GODEBUG space before the key", resolverInput{env: []string{"GODEBUG=http2client=0, netdns=cgo"}}},
	{"GODEBUG space after the value", resolverInput{env: []string{"GODEBUG=netdns=cgo "}}},
	{"GODEBUG last one wins", resolverInput{env: []string{"GODEBUG=netdns=cgo,netdns=go"}, files: []hent{nssFile("hosts: files ldap dns\n")}}},
	{"GODEBUG bisect pattern", resolverInput{env: []string{"GODEBUG=netdns=cgo#"}}},
	{"GODEBUG empty netdns", resolverInput{env: []string{"GODEBUG=netdns="}}},
	{"GODEBUG debug level only", resolverInput{env: []string{"GODEBUG=netdns=2"}}},
	{"GODEBUG netdns=go with resolv.conf unknown option", resolverInput{env: []string{"GODEBUG=netdns=go"}, files: []hent{resolvConfFile("options inet6\n")}}},
	{"image env twice: the last value", resolverInput{env: []string{"GODEBUG=netdns=cgo", "GODEBUG=netdns=go"}, files: []hent{nssFile("hosts: files ldap dns\n")}}},
	{"LOCALDOMAIN empty", resolverInput{env: []string{"LOCALDOMAIN="}}},
	{"RES_OPTIONS empty", resolverInput{env: []string{"RES_OPTIONS="}}},
	{"RES_OPTIONS", resolverInput{env: []string{"RES_OPTIONS=ndots:2"}}},
	{"HOSTALIASES", resolverInput{env: []string{"HOSTALIASES=/etc/host.aliases"}}},
}

// checkResolverDiff builds the input's image once, runs every probe in it
// and compares each answer with kiln's prediction for that probe.
func checkResolverDiff(t testing.TB, in resolverInput, kinds []probeKind) int {
	t.Helper()
	host := in.host
	if host == "" {
		host = ProbeName
	}
	gid := in.uid
	im := materializeDiff(t, []hent{hdir("etc", 0o755), hdir("tmp", 0o1777)}, in.files)
	env := runtimeEnv(in.env)
	compared := 0
	for i, k := range kinds {
		name, g := im.addProbe(t, i, k)
		pred := predictResolver(g, &proc{fsys: im.fsys, env: env, uid: in.uid, gid: gid, cwd: "/"}, host)
		real := im.run(t, in.uid, gid, nil, env, "/", name, "order", host)
		got := strings.TrimSpace(real.stdout)
		if real.exit != 0 || got == "" {
			t.Fatalf("%s: the probe failed: exit %d, %q %q", k, real.exit, real.stdout, real.stderr)
		}
		if got != pred.Order {
			t.Errorf("DISAGREEMENT %s (%s): kiln predicts %s (%s; %s), the binary decides %s", k, g.GoVersion, pred.Order, pred.Reason, pred.Rule, got)
		}
		compared++
	}
	return compared
}

func TestResolverDiff(t *testing.T) {
	diffNeedRoot(t)
	kinds := resolverProbes()
	for _, tt := range resolverTable {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkResolverDiff(t, tt.in, kinds)
		})
	}
}

// FuzzResolverDiff runs one probe per input, chosen by sel, on a
// generated environment and configuration files (see decodeResolverInput):
//
//	go test ./verify -run '^$' -fuzz FuzzResolverDiff -fuzztime 10m
func FuzzResolverDiff(f *testing.F) {
	diffNeedRoot(f)
	f.Add("netdns=go", []byte("nameserver 10.0.0.1\n"), []byte("hosts: files dns\n"), uint16(0))
	f.Add(" netdns=cgo", []byte("options ndots:2 # x\n"), []byte("hosts: files ldap dns\n"), uint16(0x0105))
	f.Add("netdns=cgo#x,netdns=2", []byte("  ; x\noptions trust-ad\n"), []byte("hosts: files mdns4 [NOTFOUND=return] dns\n"), uint16(0x2a47))
	f.Add("", []byte(""), []byte("hosts: dns [!UNAVAIL=return] files\n"), uint16(0x1002))
	kinds := resolverProbes()
	f.Fuzz(func(t *testing.T, godebug string, resolv, nss []byte, sel uint16) {
		in, kind := decodeResolverInput(godebug, resolv, nss, sel, kinds)
		checkResolverDiff(t, in, []probeKind{kind})
	})
}

// decodeResolverInput turns fuzz input into an image. sel picks the probe
// (low 4 bits), who runs (bit 4), how resolv.conf (bits 5-7) and
// nsswitch.conf (bits 8-10) are present, /etc/mdns.allow (bit 11), one
// resolver variable (bits 12-13) and a .local name (bit 14).
func decodeResolverInput(godebug string, resolv, nss []byte, sel uint16, kinds []probeKind) (resolverInput, probeKind) {
	var in resolverInput
	kind := kinds[int(sel&0xf)%len(kinds)]
	if sel&0x10 != 0 {
		in.uid = 65532
	}
	// Control bytes and NULs in an environment value are legal for a
	// runtime but not for exec's argv/envp strings: drop them.
	godebug = strings.Map(func(r rune) rune {
		if r == 0 {
			return -1
		}
		return r
	}, godebug)
	if godebug != "" {
		in.env = append(in.env, "GODEBUG="+godebug)
	}
	switch sel >> 12 & 3 {
	case 1:
		in.env = append(in.env, "LOCALDOMAIN=")
	case 2:
		in.env = append(in.env, "RES_OPTIONS=ndots:1")
	}
	if sel&0x4000 != 0 {
		in.host = "printer.local"
	}
	in.files = append(in.files, fileVariant("etc/resolv.conf", resolv, int(sel>>5&7))...)
	in.files = append(in.files, fileVariant("etc/nsswitch.conf", nss, int(sel>>8&7))...)
	if sel&0x800 != 0 {
		in.files = append(in.files, hfile("etc/mdns.allow", 0o644, "\n"))
	}
	return in, kind
}

// fileVariant is a configuration file in one of the ways an image can
// hold it.
func fileVariant(p string, data []byte, v int) []hent {
	switch v {
	case 0, 1, 2:
		return []hent{{path: p, typ: tar.TypeReg, mode: 0o644, data: data}}
	case 3:
		return nil // absent
	case 4:
		return []hent{{path: p, typ: tar.TypeReg, mode: 0o600, data: data}} // root's only
	case 5:
		return []hent{hdir(p, 0o755)}
	case 6:
		return []hent{{path: p + ".real", typ: tar.TypeReg, mode: 0o644, data: data}, hlink(p, filepath.Base(p)+".real")}
	default:
		return []hent{hlink(p, filepath.Base(p))} // a loop
	}
}

// The rules really differ between releases, and kiln follows each: the
// same image sends a *.local name to libc under go1.22 and to Go's own
// resolver under later releases, and crypto/x509 of go1.21 finds roots
// in Android's directory where later releases find none.
func TestPredictionFollowsRelease(t *testing.T) {
	diffNeedRoot(t)
	old, cur := probeKind{toolchain: "go1.22.12", libc: "glibc"}, probeKind{toolchain: "local", libc: "glibc"}
	im := materializeDiff(t, []hent{hdir("etc", 0o755)}, []hent{nssFile("hosts: files dns\n")})
	answers := map[string]string{}
	for i, k := range []probeKind{old, cur} {
		name, g := im.addProbe(t, i, k)
		got := strings.TrimSpace(im.run(t, 0, 0, nil, nil, "/", name, "order", "printer.local").stdout)
		if pred := predictResolver(g, newProc(im.fsys, nil), "printer.local"); pred.Order != got {
			t.Errorf("%s: kiln predicts %s (%s), the binary decides %s", g.GoVersion, pred.Order, pred.Rule, got)
		}
		answers[k.toolchain] = got
	}
	if answers[old.toolchain] == answers[cur.toolchain] {
		t.Errorf("the releases answered alike (%v): this test no longer shows a difference", answers)
	}

	a, _ := diffCerts(t)
	im = materializeDiff(t, []hent{hdir("etc", 0o755)}, []hent{hfile("system/etc/security/cacerts/a.0", 0o644, a)})
	counts := map[string]string{}
	for i, k := range []probeKind{{toolchain: "go1.21.13", libc: "none"}, {toolchain: "local", libc: "none"}} {
		name, g := im.addProbe(t, i, k)
		got := strings.TrimSpace(im.run(t, 0, 0, nil, nil, "/", name, "roots").stdout)
		if pred := predictRoots(newProc(im.fsys, nil), rulesFor(g.GoVersion), g); fmt.Sprint(pred.certs) != got {
			t.Errorf("%s: kiln predicts %d roots, SystemCertPool gives %s", g.GoVersion, pred.certs, got)
		}
		counts[k.toolchain] = got
	}
	if counts["go1.21.13"] == "0" || counts["go1.21.13"] == counts["local"] {
		t.Errorf("go1.21 and this Go found the same roots (%v): this test no longer shows a difference", counts)
	}
}
