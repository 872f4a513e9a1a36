package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// userInput is one image for the user lookup: its User and files.
type userInput struct {
	spec  string
	files []hent
}

const (
	passwdRoot    = "root:x:0:0:root:/root:/sbin/nologin\n"
	passwdNonroot = "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	groupStd      = "root:x:0:\nnonroot:x:65532:\nwheel:x:10:nonroot,other\n"
)

func passwdFile(s string) hent { return hfile("etc/passwd", 0o644, s) }
func groupFile(s string) hent  { return hfile("etc/group", 0o644, s) }

// userTable is the hand-written input of the user differential test;
// rows found by fuzzing are marked "found:".
var userTable = []struct {
	name string
	in   userInput
}{
	{"no user, passwd", userInput{"", []hent{passwdFile(passwdRoot + passwdNonroot)}}},
	{"no user, no passwd", userInput{"", nil}},
	{"uid with an entry", userInput{"65532", []hent{passwdFile(passwdRoot + passwdNonroot)}}},
	{"uid without an entry", userInput{"4242", []hent{passwdFile(passwdRoot + passwdNonroot)}}},
	{"uid, no passwd", userInput{"4242", nil}},
	{"name", userInput{"nonroot", []hent{passwdFile(passwdRoot + passwdNonroot), groupFile(groupStd)}}},
	{"name, no passwd", userInput{"nonroot", nil}},
	{"name not in passwd", userInput{"nobody", []hent{passwdFile(passwdRoot + passwdNonroot)}}},
	{"name mapping to uid 0", userInput{"toor", []hent{passwdFile(passwdRoot + "toor:x:0:0::/:/bin/sh\n" + passwdNonroot)}}},
	{"indented entry", userInput{"nonroot", []hent{passwdFile(passwdRoot + "  " + passwdNonroot)}}},
	{"uid that does not parse", userInput{"weird", []hent{passwdFile("weird:x:abc:def::/:/bin/sh\n")}}},
	{"first match wins", userInput{"nonroot", []hent{passwdFile("nonroot:x:1000:1000::/:/bin/sh\n" + passwdNonroot)}}},
	{"uid matches the uid field only", userInput{"1000", []hent{passwdFile("1000:x:2000:2000::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")}}},
	{"name matches the name field only", userInput{"app", []hent{passwdFile("x:x:app:1::/:/bin/sh\n")}}},
	{"comment line is an entry", userInput{"#svc", []hent{passwdFile("#svc:x:77:77::/:/bin/sh\n" + passwdNonroot)}}},
	{"blank and CRLF lines", userInput{"nonroot", []hent{passwdFile("\r\n" + strings.ReplaceAll(passwdRoot+passwdNonroot, "\n", "\r\n"))}}},
	{"group by name", userInput{"nonroot:wheel", []hent{passwdFile(passwdRoot + passwdNonroot), groupFile(groupStd)}}},
	{"group by id", userInput{"nonroot:4321", []hent{passwdFile(passwdRoot + passwdNonroot), groupFile(groupStd)}}},
	{"group by name, missing", userInput{"nonroot:staff", []hent{passwdFile(passwdRoot + passwdNonroot), groupFile(groupStd)}}},
	{"uid:gid", userInput{"1000:1000", nil}},
	{"0:0", userInput{"0:0", []hent{passwdFile(passwdRoot)}}},
	{"root", userInput{"root", []hent{passwdFile(passwdRoot)}}},
	{"a third field is ignored", userInput{"nonroot:wheel:extra", []hent{passwdFile(passwdRoot + passwdNonroot), groupFile(groupStd)}}},
	{"signed uid", userInput{"+65532", []hent{passwdFile(passwdRoot + passwdNonroot)}}},
	{"group comments and members", userInput{"nonroot", []hent{passwdFile(passwdNonroot), groupFile("#wheel:x:10:nonroot\n  audio:x:29:pulse,nonroot  \nvideo:x:44:\n")}}},
	{"passwd is a directory", userInput{"65532", []hent{hdir("etc/passwd", 0o755)}}},
	{"passwd line past 64 KiB", userInput{"nonroot", []hent{passwdFile("long:x:1:1:" + strings.Repeat("g", 70<<10) + ":/:/bin/sh\n" + passwdNonroot)}}},
	{"passwd behind a relative symlink", userInput{"nonroot", []hent{hfile("usr/lib/passwd", 0o644, passwdNonroot), hlink("etc/passwd", "../usr/lib/passwd")}}},
	{"passwd unreadable to others", userInput{"nonroot", []hent{{path: "etc/passwd", mode: 0o600, data: []byte(passwdNonroot)}}}},
	// found: a user that is not UTF-8 reaches the runtime as JSON, each
	// bad byte a U+FFFD, and matches no entry spelled with the bytes.
	{"found: a user name that is not UTF-8", userInput{"\xfa\xfa\x0f\xfa", []hent{passwdFile("\xfa\xfa\x0f\xfa:x:0:0::/:/bin/sh\n" + passwdNonroot)}}},
}

// needRuntime skips unless umoci and runc, the runtime whose user lookup
// is the truth here, are installed.
func needRuntime(t testing.TB) {
	t.Helper()
	diffNeedRoot(t)
	for tool, pkg := range map[string]string{"umoci": "umoci", "runc": "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			diffMissing(t, fmt.Sprintf("%s is not installed (apt-get install -y %s)", tool, pkg))
		}
	}
}

// checkUserDiff writes the image as an OCI layout with the user as its
// config's User, has umoci unpack it (umoci resolves the user against the
// image's files) and runc run the probe, which prints the ids it runs
// with; kiln's resolveUser must give the same ids, or fail where the
// runtime refuses to start.
func checkUserDiff(t testing.TB, in userInput) {
	t.Helper()
	probe := buildProbe(t, probeKind{toolchain: "local", libc: "none"})
	data, err := os.ReadFile(probe.path)
	if err != nil {
		t.Fatal(err)
	}
	ents := append([]hent{hdir("etc", 0o755), {path: "probe", mode: 0o755, data: data}}, in.files...)
	fsys, err := FlattenLayers([]v1.Layer{rawLayer(t, hentTar(t, ents))}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := runtimeConfig(&v1.ConfigFile{Config: v1.Config{User: in.spec}})
	if err != nil {
		t.Fatal(err)
	}
	u, kerr := resolveUser(fsys, cf.Config.User)

	img := testImage(t, ents, true, func(c *v1.Config) {
		c.User, c.Entrypoint = in.spec, []string{"/probe", "id"}
	})
	dir, err := os.MkdirTemp(sandboxTempDir(""), "kiln-userdiff-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err == nil {
		err = lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "t"}))
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bundle := filepath.Join(dir, "bundle")
	out, err := exec.CommandContext(ctx, "umoci", "unpack", "--image", filepath.Join(dir, "oci")+":t", bundle).CombinedOutput()
	if err != nil {
		if !strings.Contains(string(out), "user spec") {
			t.Fatalf("umoci unpack: %v: %s", err, out)
		}
		if kerr == nil {
			t.Errorf("DISAGREEMENT user %q: kiln resolves uid %d gid %d groups %v, but umoci refuses: %s", in.spec, u.uid, u.gid, u.groups, strings.TrimSpace(string(out)))
		}
		return
	}
	if kerr != nil {
		t.Errorf("DISAGREEMENT user %q: kiln says the runtime cannot resolve it (%v), but umoci does", in.spec, kerr)
		return
	}
	var spec map[string]any
	cfgPath := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		t.Fatal(err)
	}
	spec["process"].(map[string]any)["terminal"] = false
	if b, err = json.Marshal(spec); err == nil {
		err = os.WriteFile(cfgPath, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	run := exec.CommandContext(ctx, "runc", "--root", filepath.Join(dir, "runc"), "run", "--bundle", bundle, filepath.Base(dir))
	run.Stdin = nil
	out, err = run.Output()
	if err != nil {
		t.Fatalf("runc run: %v: %s", err, out)
	}
	// "uid gid [g1 g2]"
	f := strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(string(out)))
	if len(f) < 2 {
		t.Fatalf("the probe printed %q", out)
	}
	var got []int
	for _, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("the probe printed %q", out)
		}
		got = append(got, n)
	}
	groups := slices.Clone(u.groups)
	slices.Sort(groups)
	gotGroups := slices.Clone(got[2:])
	slices.Sort(gotGroups)
	if got[0] != u.uid || got[1] != u.gid || !slices.Equal(slices.Compact(groups), slices.Compact(gotGroups)) {
		t.Errorf("DISAGREEMENT user %q: kiln resolves uid %d gid %d groups %v, runc runs uid %d gid %d groups %v", in.spec, u.uid, u.gid, u.groups, got[0], got[1], got[2:])
	}
}

func TestUserDiff(t *testing.T) {
	needRuntime(t)
	for _, tt := range userTable {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkUserDiff(t, tt.in)
		})
	}
}

// FuzzUserDiff resolves generated user specs against generated passwd and
// group files with umoci and runc as the oracle (about one input a
// second):
//
//	go test ./verify -run '^$' -fuzz FuzzUserDiff -fuzztime 10m -fuzzminimizetime 0
func FuzzUserDiff(f *testing.F) {
	needRuntime(f)
	for _, tt := range userTable[:12] {
		var passwd, group []byte
		for _, e := range tt.in.files {
			switch e.path {
			case "etc/passwd":
				passwd = e.data
			case "etc/group":
				group = e.data
			}
		}
		f.Add(tt.in.spec, passwd, group)
	}
	f.Fuzz(func(t *testing.T, spec string, passwd, group []byte) {
		// An image config's User is a JSON string; runc's ids fit the
		// user namespace's range only below 2^31.
		if strings.ContainsAny(spec, "\x00\n") || len(passwd) > 4096 || len(group) > 4096 {
			t.Skip()
		}
		var files []hent
		if passwd != nil {
			files = append(files, hent{path: "etc/passwd", mode: 0o644, data: passwd})
		}
		if group != nil {
			files = append(files, hent{path: "etc/group", mode: 0o644, data: group})
		}
		checkUserDiff(t, userInput{spec: spec, files: files})
	})
}
