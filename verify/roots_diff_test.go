package verify

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// filesProbes are the probe builds the CA-roots and zoneinfo tables run:
// cgo does not change either rule, the release does (go1.21 reads
// Android's certificate directory on Linux too), and one build embeds
// time/tzdata.
func filesProbes() []probeKind {
	var ks []probeKind
	for _, tc := range diffToolchains {
		ks = append(ks, probeKind{toolchain: tc, libc: "none"})
	}
	return append(ks, probeKind{toolchain: "local", libc: "none", tags: "timetzdata"})
}

// diffCerts are three certificates and what a file can hold, made once
// per process.
var (
	diffCertsOnce sync.Once
	diffCertA     string
	diffCertB     string
)

func diffCerts(t testing.TB) (string, string) {
	diffCertsOnce.Do(func() { diffCertA, diffCertB = testCert(t, "kiln root A"), testCert(t, "kiln root B") })
	return diffCertA, diffCertB
}

// zoneFiles are the zoneinfo contents the tables use: a real zone, and
// Go's own zoneinfo.zip (stored entries), from this machine.
func zoneFiles(t testing.TB) (tzif, goZip []byte) {
	t.Helper()
	tzif, err := os.ReadFile("/usr/share/zoneinfo/" + zoneProbe)
	if err != nil {
		diffMissing(t, "/usr/share/zoneinfo is not here (apt-get install -y tzdata)")
	}
	goZip, err = os.ReadFile(goRootZip())
	if err != nil {
		t.Fatalf("reading Go's zoneinfo.zip: %v", err)
	}
	return tzif, goZip
}

func goRootZip() string {
	out, err := runGo("go", os.Environ(), "", "env", "GOROOT")
	if err != nil {
		return "/usr/local/go/lib/time/zoneinfo.zip"
	}
	return strings.TrimSpace(out) + "/lib/time/zoneinfo.zip"
}

// zipOf is a zip holding one zone, stored or deflated, with or without an
// archive comment (time reads neither of the latter two).
func zipOf(t testing.TB, name string, data []byte, method uint16, comment string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil && comment != "" {
		err = zw.SetComment(comment)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// filesInput is one image for crypto/x509's and time's files.
type filesInput struct {
	env   []string
	files []hent
	uid   int
	cwd   string
}

// filesTable builds the hand-written inputs of the CA-roots and zoneinfo
// differential test; rows found by fuzzing are marked "found:".
func filesTable(t testing.TB) []struct {
	name string
	in   filesInput
} {
	a, b := diffCerts(t)
	tzif, goZip := zoneFiles(t)
	stored := zipOf(t, zoneProbe, tzif, zip.Store, "")
	type row = struct {
		name string
		in   filesInput
	}
	f := func(p, data string) hent { return hfile(p, 0o644, data) }
	return []row{
		{"nothing", filesInput{}},
		{"debian bundle", filesInput{files: []hent{f("etc/ssl/certs/ca-certificates.crt", a+b)}}},
		{"alpine bundle", filesInput{files: []hent{f("etc/ssl/cert.pem", a)}}},
		{"an empty first file ends the file search", filesInput{files: []hent{f("etc/pki/tls/certs/ca-bundle.crt", ""), f("etc/ssl/cert.pem", a)}}},
		{"a file without certificates ends it too", filesInput{files: []hent{f("etc/ssl/ca-bundle.pem", "# no roots\n"), f("etc/ssl/cert.pem", a)}}},
		{"an unreadable first file does not", filesInput{files: []hent{{path: "etc/ssl/ca-bundle.pem", mode: 0o600, data: []byte(a)}, f("etc/ssl/cert.pem", b)}, uid: 65532}},
		{"unreadable and nothing else: an error", filesInput{files: []hent{{path: "etc/ssl/cert.pem", mode: 0o600, data: []byte(a)}}, uid: 65532}},
		{"a directory where a file is listed", filesInput{files: []hent{hdir("etc/pki/tls/cacert.pem", 0o755), f("etc/ssl/cert.pem", a)}}},
		{"a looping first file", filesInput{files: []hent{hlink("etc/pki/tls/cacert.pem", "cacert.pem"), f("etc/ssl/cert.pem", a)}}},
		{"not a directory on the way", filesInput{files: []hent{f("etc/pki", "x"), f("etc/ssl/cert.pem", a)}}},
		{"hashed files in the directory", filesInput{files: []hent{f("etc/ssl/certs/5ad8a5d6.0", a), f("etc/ssl/certs/0b9bcd01.0", b)}}},
		{"same-directory symlinks are skipped", filesInput{files: []hent{f("etc/ssl/certs/x.pem", ""), hlink("etc/ssl/certs/5ad8a5d6.0", "x.pem"), f("etc/x.pem", a)}}},
		{"symlinks elsewhere are read", filesInput{files: []hent{f("usr/share/ca/a.crt", a), hlink("etc/ssl/certs/5ad8a5d6.0", "/usr/share/ca/a.crt")}}},
		{"relative symlink with a slash", filesInput{files: []hent{f("etc/ssl/a.crt", a), hlink("etc/ssl/certs/5ad8a5d6.0", "../a.crt")}}},
		{"directory listable, not searchable", filesInput{files: []hent{{path: "etc/ssl/certs", typ: tar.TypeDir, mode: 0o744}, f("etc/ssl/certs/a.pem", a)}, uid: 65532}},
		{"directory unreadable", filesInput{files: []hent{{path: "etc/ssl/certs", typ: tar.TypeDir, mode: 0o711}, f("etc/ssl/certs/a.pem", a)}, uid: 65532}},
		{"the same root twice counts once", filesInput{files: []hent{f("etc/ssl/certs/ca-certificates.crt", a+a+b), f("etc/ssl/certs/a.pem", a)}}},
		{"only CERTIFICATE blocks without headers", filesInput{files: []hent{f("etc/ssl/cert.pem", strings.Replace(a, "CERTIFICATE", "TRUSTED CERTIFICATE", 2)+strings.Replace(b, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1))}}},
		{"garbage between the markers", filesInput{files: []hent{f("etc/ssl/cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}}},
		{"SSL_CERT_FILE", filesInput{env: []string{"SSL_CERT_FILE=/opt/roots.pem"}, files: []hent{f("opt/roots.pem", a), f("etc/ssl/cert.pem", b)}}},
		{"SSL_CERT_FILE replaces the list", filesInput{env: []string{"SSL_CERT_FILE=/opt/none.pem"}, files: []hent{f("etc/ssl/cert.pem", b)}}},
		{"SSL_CERT_FILE empty is unset", filesInput{env: []string{"SSL_CERT_FILE="}, files: []hent{f("etc/ssl/cert.pem", b)}}},
		{"SSL_CERT_FILE relative", filesInput{env: []string{"SSL_CERT_FILE=roots.pem"}, files: []hent{f("opt/roots.pem", a)}, cwd: "/opt"}},
		{"SSL_CERT_DIR list", filesInput{env: []string{"SSL_CERT_DIR=/nowhere:/opt/certs"}, files: []hent{f("opt/certs/a.pem", a)}}},
		{"SSL_CERT_DIR replaces the directories", filesInput{env: []string{"SSL_CERT_DIR=/opt/certs"}, files: []hent{f("etc/ssl/certs/a.pem", a)}}},
		{"SSL_CERT_DIR of empty elements", filesInput{env: []string{"SSL_CERT_DIR=::"}, files: []hent{f("etc/ssl/certs/a.pem", a)}}},
		{"SSL_CERT_DIR a file", filesInput{env: []string{"SSL_CERT_DIR=/opt/a.pem"}, files: []hent{f("opt/a.pem", a)}}},
		{"Android's directory", filesInput{files: []hent{f("system/etc/security/cacerts/a.0", a)}}},
		{"zoneinfo", filesInput{files: []hent{f("usr/share/zoneinfo/"+zoneProbe, string(tzif))}}},
		{"zoneinfo in /etc/zoneinfo", filesInput{files: []hent{f("etc/zoneinfo/"+zoneProbe, string(tzif))}}},
		{"zoneinfo garbage, then a good one", filesInput{files: []hent{f("usr/share/zoneinfo/"+zoneProbe, "TZif garbage"), f("usr/share/lib/zoneinfo/"+zoneProbe, string(tzif))}}},
		{"zoneinfo unreadable", filesInput{files: []hent{{path: "usr/share/zoneinfo/" + zoneProbe, mode: 0o600, data: tzif}}, uid: 65532}},
		{"zoneinfo a directory", filesInput{files: []hent{hdir("usr/share/zoneinfo/"+zoneProbe, 0o755)}}},
		{"zoneinfo symlink", filesInput{files: []hent{f("usr/share/zoneinfo/US/Eastern", string(tzif)), hlink("usr/share/zoneinfo/"+zoneProbe, "../US/Eastern")}}},
		{"ZONEINFO directory", filesInput{env: []string{"ZONEINFO=/opt/zi"}, files: []hent{f("opt/zi/"+zoneProbe, string(tzif))}}},
		{"ZONEINFO zip", filesInput{env: []string{"ZONEINFO=/opt/zoneinfo.zip"}, files: []hent{f("opt/zoneinfo.zip", string(goZip))}}},
		{"ZONEINFO zip of one zone", filesInput{env: []string{"ZONEINFO=/opt/z.zip"}, files: []hent{f("opt/z.zip", string(stored))}}},
		{"ZONEINFO deflated zip", filesInput{env: []string{"ZONEINFO=/opt/z.zip"}, files: []hent{f("opt/z.zip", string(zipOf(t, zoneProbe, tzif, zip.Deflate, "")))}}},
		{"ZONEINFO zip with a comment", filesInput{env: []string{"ZONEINFO=/opt/z.zip"}, files: []hent{f("opt/z.zip", string(zipOf(t, zoneProbe, tzif, zip.Store, "kiln")))}}},
		{"ZONEINFO zip not named .zip", filesInput{env: []string{"ZONEINFO=/opt/z.ZIP"}, files: []hent{f("opt/z.ZIP", string(stored))}}},
		{"ZONEINFO broken, system fine", filesInput{env: []string{"ZONEINFO=/opt/z.zip"}, files: []hent{f("opt/z.zip", "PK"), f("usr/share/zoneinfo/"+zoneProbe, string(tzif))}}},
		{"GOROOT's zoneinfo.zip", filesInput{env: []string{"GOROOT=/usr/local/go"}, files: []hent{f("usr/local/go/lib/time/zoneinfo.zip", string(goZip))}}},
	}
}

// checkFilesDiff builds the input's image and compares, for every probe,
// what SystemCertPool and LoadLocation(zoneProbe) do with kiln's
// prediction of them.
func checkFilesDiff(t testing.TB, in filesInput, kinds []probeKind) int {
	t.Helper()
	im := materializeDiff(t, []hent{hdir("etc", 0o755)}, in.files)
	env := runtimeEnv(in.env)
	cwd := in.cwd
	if cwd == "" {
		cwd = "/"
	}
	p := &proc{fsys: im.fsys, env: env, uid: in.uid, gid: in.uid, cwd: cwd}
	compared := 0
	for i, k := range kinds {
		name, g := im.addProbe(t, i, k)
		roots := predictRoots(p, rulesFor(g.GoVersion), g)
		want := strconv.Itoa(roots.certs)
		if roots.certs == 0 && roots.firstErr != nil {
			want = "error"
		}
		real := im.run(t, in.uid, in.uid, nil, env, cwd, name, "roots")
		got := strings.TrimSpace(real.stdout)
		if strings.HasPrefix(got, "error") {
			got = "error"
		}
		if got != want {
			t.Errorf("DISAGREEMENT %s (%s) roots: kiln predicts %s (%+v), SystemCertPool gives %q %s", k, g.GoVersion, want, roots, strings.TrimSpace(real.stdout), real.stderr)
		}
		from, err := predictZone(p, g, zoneProbe)
		wantZone := "ok"
		if err != nil {
			wantZone = "error"
		}
		real = im.run(t, in.uid, in.uid, nil, env, cwd, name, "zone", zoneProbe)
		got = strings.TrimSpace(real.stdout)
		if strings.HasPrefix(got, "error") {
			got = "error"
		}
		if got != wantZone {
			t.Errorf("DISAGREEMENT %s (%s) zone: kiln predicts %s (%s %v), LoadLocation says %q %s", k, g.GoVersion, wantZone, from, err, strings.TrimSpace(real.stdout), real.stderr)
		}
		compared += 2
	}
	return compared
}

func TestFilesDiff(t *testing.T) {
	diffNeedRoot(t)
	kinds := filesProbes()
	for _, tt := range filesTable(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkFilesDiff(t, tt.in, kinds)
		})
	}
}

// FuzzFilesDiff places generated entries where crypto/x509 and time look
// (see decodeFilesInput) and runs one probe per input:
//
//	go test ./verify -run '^$' -fuzz FuzzFilesDiff -fuzztime 10m -fuzzminimizetime 0
func FuzzFilesDiff(f *testing.F) {
	diffNeedRoot(f)
	f.Add("", "", []byte{0x00, 0x21, 0x42}, uint16(0))
	f.Add("/opt/c.pem", "/opt:/etc/ssl/certs", []byte{0x13, 0x74, 0x85, 0x9a}, uint16(0x0011))
	f.Add("", "", []byte{0xb0, 0xc3, 0xd6, 0xe1}, uint16(0x0102))
	kinds := filesProbes()
	a, b := diffCerts(f)
	tzif, goZip := zoneFiles(f)
	contents := [][]byte{[]byte(a), []byte(b), []byte(a + b), nil, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		tzif, []byte("TZif2"), zipOf(f, zoneProbe, tzif, zip.Store, ""), zipOf(f, zoneProbe, tzif, zip.Deflate, ""), goZip}
	f.Fuzz(func(t *testing.T, sslFile, sslDir string, layout []byte, sel uint16) {
		in, kind := decodeFilesInput(sslFile, sslDir, layout, sel, kinds, contents)
		checkFilesDiff(t, in, []probeKind{kind})
	})
}

// filesPaths are where a generated entry can go: crypto/x509's lists,
// time's sources, and places the environment can name.
var filesPaths = []string{
	"etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/ca-bundle.pem", "etc/ssl/cert.pem",
	"etc/ssl/certs/a.pem", "etc/pki/tls/certs/b.pem", "system/etc/security/cacerts/c.0", "opt/c.pem",
	"usr/share/zoneinfo/" + zoneProbe, "usr/share/lib/zoneinfo/" + zoneProbe, "etc/zoneinfo/" + zoneProbe, "opt/zoneinfo.zip",
	"opt/" + zoneProbe, "etc/ssl/certs", "usr/share/zoneinfo", "opt",
}

// decodeFilesInput makes one image from fuzz input: each layout byte puts
// an entry at filesPaths[b>>4] of kind b&15 (a content, a directory, a
// symlink, an unreadable file); sslFile, sslDir and, by sel, ZONEINFO and
// GOROOT set the environment; sel also picks the probe and the user.
func decodeFilesInput(sslFile, sslDir string, layout []byte, sel uint16, kinds []probeKind, contents [][]byte) (filesInput, probeKind) {
	var in filesInput
	kind := kinds[int(sel&0xf)%len(kinds)]
	if sel&0x10 != 0 {
		in.uid = 65532
	}
	clean := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	if sslFile != "" {
		in.env = append(in.env, "SSL_CERT_FILE="+clean(sslFile))
	}
	if sslDir != "" {
		in.env = append(in.env, "SSL_CERT_DIR="+clean(sslDir))
	}
	switch sel >> 5 & 3 {
	case 1:
		in.env = append(in.env, "ZONEINFO=/opt/zoneinfo.zip")
	case 2:
		in.env = append(in.env, "ZONEINFO=/opt")
	case 3:
		in.env = append(in.env, "GOROOT=/opt/go", "ZONEINFO=/nowhere")
	}
	if len(layout) > 24 {
		layout = layout[:24]
	}
	for i, c := range layout {
		p := filesPaths[int(c>>4)%len(filesPaths)]
		switch k := int(c & 15); {
		case k < len(contents):
			in.files = append(in.files, hent{path: p, typ: tar.TypeReg, mode: 0o644, data: contents[k]})
		case k == 10:
			in.files = append(in.files, hdir(p, 0o755))
		case k == 11:
			in.files = append(in.files, hent{path: p, typ: tar.TypeReg, mode: 0o600, data: contents[i%len(contents)]})
		case k == 12:
			in.files = append(in.files, hlink(p, "x.pem")) // same directory
		case k == 13:
			in.files = append(in.files, hlink(p, "/"+filesPaths[i%len(filesPaths)]))
		case k == 14:
			in.files = append(in.files, hdir(p, 0o700))
		default:
			in.files = append(in.files, hlink(p, p[strings.LastIndexByte(p, '/')+1:])) // a loop
		}
	}
	if sel&0x80 != 0 {
		in.files = append(in.files, hlink("opt/go", "/usr/local/go"), hent{path: "usr/local/go/lib/time/zoneinfo.zip", typ: tar.TypeReg, mode: 0o644, data: contents[len(contents)-1]})
	}
	return in, kind
}
