package verify_test

import (
	"context"
	"flag"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus/*.json from this run's reports")

// corpusCase is one image of the corpus: a stand-in base, a layer with
// /app and whatever else the case needs, and what kiln must say about it.
// Every case whose binary is in the image is also run for real (see
// reality) and kiln's verdict is checked against what happened.
type corpusCase struct {
	name   string
	base   string // testbase entry: static, base or alpine
	arch   string // its platform; "" is amd64
	app    string // artifact written to /app; "" when entries has /app
	mode   int64  // /app's mode; 0 is 0755
	extra  func(t *testing.T, c *corpus) []entry
	user   *string // the config's User; nil keeps the base's
	policy func(p *targets.Policy)

	passed   bool
	want     map[string]verify.Status
	evidence map[string]string // check id -> a substring of its evidence

	realStderr string                                    // in the real --version run's stderr
	realMore   func(t *testing.T, r *reality, c *corpus) // further real runs
}

func strPtr(s string) *string { return &s }

// The entries that replace the amd64 base's loader link.
const ldLink = "lib64/ld-linux-x86-64.so.2"

func corpusCases() []corpusCase {
	pass, fail, warn, skip := verify.Pass, verify.Fail, verify.Warn, verify.Skip
	certsOK := func(t *testing.T, r *reality, _ *corpus) {
		t.Helper()
		if res := r.run(t, nil, "--certs"); !res.ok() {
			t.Errorf("reality: --certs failed in an image kiln says has CA roots: %v", res)
		}
	}
	return []corpusCase{
		// 1. static Go on distroless static.
		{
			name: "static-amd64", base: "static", app: "go-static-amd64",
			passed: true,
			want: map[string]verify.Status{"elf.arch": pass, "link.mode": pass, "link.interp": skip, "link.needed": skip,
				"link.family": skip, "dns.resolver": pass, "run.start": pass, "run.resolver": pass, "files.certs": pass,
				"user.nonroot": pass, "base.pinned": pass},
			realMore: certsOK,
		},
		{
			name: "static-arm64", base: "static", arch: "arm64", app: "go-static-arm64",
			passed:   true,
			want:     map[string]verify.Status{"elf.arch": pass, "link.interp": skip, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"run.start": "/.kiln-qemu /app --version"},
		},
		// 2. glibc cgo on distroless base.
		{
			name: "glibc-amd64", base: "base", app: "go-glibc-amd64",
			passed: true,
			want: map[string]verify.Status{"link.interp": pass, "link.needed": pass, "link.versions": pass, "link.family": pass,
				"dns.resolver": pass, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"link.needed": "/lib/x86_64-linux-gnu/libm.so.6 (ld.so.cache)", "run.start": "cbrt(27) = 3"},
		},
		{
			name: "glibc-arm64", base: "base", arch: "arm64", app: "go-glibc-arm64",
			passed: true,
			want: map[string]verify.Status{"elf.arch": pass, "link.interp": pass, "link.needed": pass, "link.versions": pass,
				"link.family": pass, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"link.needed": "/lib/aarch64-linux-gnu/libm.so.6 (ld.so.cache)", "run.start": "cbrt(27) = 3"},
		},
		// 3. musl cgo on alpine (which runs as root: a warning only).
		{
			name: "musl-amd64", base: "alpine", app: "go-musl-amd64",
			passed: true,
			want: map[string]verify.Status{"link.interp": pass, "link.needed": pass, "link.family": pass, "run.start": pass,
				"run.resolver": pass, "user.nonroot": warn},
			evidence: map[string]string{"link.family": "musl binary, musl image", "run.start": "cbrt(27) = 3"},
		},
		// 4. glibc binary, no loader.
		{
			name: "glibc-on-static", base: "static", app: "go-glibc-amd64",
			want: map[string]verify.Status{"link.interp": fail, "link.needed": fail, "link.family": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "PT_INTERP /lib64/ld-linux-x86-64.so.2 is not in the image",
				"run.start": "no such file or directory"},
		},
		// 5. glibc binary on musl.
		{
			name: "glibc-on-alpine", base: "alpine", app: "go-glibc-amd64",
			want:     map[string]verify.Status{"link.interp": fail, "link.family": fail, "run.start": fail},
			evidence: map[string]string{"link.family": "the image's libc is musl", "run.start": "no such file or directory"},
		},
		// 6. a library the image lacks, and one found through DT_RUNPATH.
		{
			name: "needed-missing", base: "base", app: "c-kilnx",
			want:       map[string]verify.Status{"link.interp": pass, "link.needed": fail, "link.versions": skip, "run.start": fail},
			evidence:   map[string]string{"link.needed": "libkilnx.so (needed by /app)"},
			realStderr: "libkilnx.so: cannot open shared object file",
		},
		{
			name: "needed-runpath", base: "base", app: "c-kilnx-runpath",
			extra: func(t *testing.T, c *corpus) []entry {
				return []entry{file("kiln-lib/libkilnx.so", 0o755, c.read(t, "libkilnx.so"))}
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "link.versions": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/kiln-lib/libkilnx.so (DT_RUNPATH of /app)", "run.start": "kilnx() = 42"},
		},
		{
			// The same binary without the library: DT_RUNPATH is searched
			// first, then the rest, and nothing has it.
			name: "needed-runpath-missing", base: "base", app: "c-kilnx-runpath",
			want:       map[string]verify.Status{"link.needed": fail, "run.start": fail},
			evidence:   map[string]string{"link.needed": "/kiln-lib/libkilnx.so"},
			realStderr: "libkilnx.so: cannot open shared object file",
		},
		// 7. symbol versions the image's library does not define.
		{
			name: "versions-foo-old", base: "base", app: "c-foo",
			extra: func(t *testing.T, c *corpus) []entry {
				return []entry{file("lib/x86_64-linux-gnu/libfoo.so.1", 0o755, c.read(t, "libfoo-old"))}
			},
			want: map[string]verify.Status{"link.needed": pass, "link.versions": fail, "run.start": fail},
			evidence: map[string]string{"link.needed": "/lib/x86_64-linux-gnu/libfoo.so.1 (system directory)",
				"link.versions": "/app needs FOO_2.0 from libfoo.so.1, but /lib/x86_64-linux-gnu/libfoo.so.1 defines up to FOO_1.0"},
			realStderr: "version `FOO_2.0' not found",
		},
		{
			name: "versions-foo-new", base: "base", app: "c-foo",
			extra: func(t *testing.T, c *corpus) []entry {
				return []entry{file("lib/x86_64-linux-gnu/libfoo.so.1", 0o755, c.read(t, "libfoo-new"))}
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "link.versions": pass, "run.start": pass},
			evidence: map[string]string{"run.start": "foo1() + foo2() = 3"},
		},
		{
			// A later layer replaces the base's libc.so.6 with one whose
			// versions stop at GLIBC_2.31 (Debian 11's).
			name: "versions-glibc-old", base: "base", app: "c-hello",
			extra: func(t *testing.T, c *corpus) []entry {
				return []entry{file("lib/x86_64-linux-gnu/libc.so.6", 0o755, c.read(t, "libc-old"))}
			},
			want: map[string]verify.Status{"link.needed": pass, "link.versions": fail, "run.start": fail},
			evidence: map[string]string{
				"link.versions": "/app needs GLIBC_2.34 from libc.so.6, but /lib/x86_64-linux-gnu/libc.so.6 defines up to GLIBC_2.31"},
			realStderr: "version `GLIBC_2.34' not found",
		},
		// 8. an arm64 binary in an image that says amd64.
		{
			name: "wrong-arch", base: "static", app: "go-static-arm64",
			want:     map[string]verify.Status{"elf.arch": fail},
			evidence: map[string]string{"elf.arch": "is ELFCLASS64 EM_AARCH64 (arm64) but the image is linux/amd64"},
		},
		// 9. the loader deleted by a whiteout.
		{
			name: "whiteout-loader", base: "base", app: "go-glibc-amd64",
			extra: func(*testing.T, *corpus) []entry { return []entry{whiteout(ldLink)} },
			want:  map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "PT_INTERP /lib64/ld-linux-x86-64.so.2 is not in the image",
				"run.start": "no such file or directory"},
		},
		// 10. loader links that climb out of the root or point at the host.
		{
			// ".." stops at the image root: this reaches /kiln-ld, which
			// only the image has (the host has no /kiln-ld).
			name: "symlink-escape-to-image", base: "base", app: "go-glibc-amd64",
			extra: func(t *testing.T, c *corpus) []entry {
				return []entry{
					file("kiln-ld/ld-linux-x86-64.so.2", 0o755, c.baseFile(t, "base", "amd64", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")),
					symlink(ldLink, "../../../../../kiln-ld/ld-linux-x86-64.so.2"),
				}
			},
			passed:   true,
			want:     map[string]verify.Status{"link.interp": pass, "link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.interp": "PT_INTERP /lib64/ld-linux-x86-64.so.2 → /kiln-ld/ld-linux-x86-64.so.2 is in the image"},
		},
		{
			// This reaches /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2,
			// which the host has (merged /usr) and the image does not.
			name: "symlink-escape-to-host", base: "base", app: "go-glibc-amd64",
			extra: func(*testing.T, *corpus) []entry {
				return []entry{symlink(ldLink, "../../../../../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")}
			},
			want:     map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "is not in the image"},
		},
		{
			// Inside the root this names itself.
			name: "symlink-loop", base: "base", app: "go-glibc-amd64",
			extra: func(*testing.T, *corpus) []entry {
				return []entry{symlink(ldLink, "../../../../../lib64/ld-linux-x86-64.so.2")}
			},
			want:     map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "symlink loop", "run.start": "too many levels of symbolic links"},
		},
		{
			name: "symlink-absolute-to-host", base: "base", app: "go-glibc-amd64",
			extra: func(*testing.T, *corpus) []entry {
				return []entry{symlink(ldLink, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")}
			},
			want:     map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "is not in the image", "run.start": "no such file or directory"},
		},
		// 11. nsswitch.conf that only libc can follow.
		{
			name: "nsswitch-ldap-want-go", base: "base", app: "go-glibc-amd64",
			extra: func(*testing.T, *corpus) []entry {
				return []entry{file("etc/nsswitch.conf", 0o644, []byte("hosts: files ldap dns\n"))}
			},
			policy:   func(p *targets.Policy) { p.Resolver = "go" },
			want:     map[string]verify.Status{"dns.resolver": fail, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"dns.resolver": "verify.resolver is go, but Go will use the cgo resolver", "run.resolver": "cgo resolver, as predicted"},
		},
		{
			name: "nsswitch-ldap-want-cgo", base: "base", app: "go-glibc-amd64",
			extra: func(*testing.T, *corpus) []entry {
				return []entry{file("etc/nsswitch.conf", 0o644, []byte("hosts: files ldap dns\n"))}
			},
			policy:   func(p *targets.Policy) { p.Resolver = "cgo" },
			passed:   true,
			want:     map[string]verify.Status{"dns.resolver": pass, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"dns.resolver": "cgo resolver", "run.resolver": "cgo resolver, as predicted"},
		},
		// 12. root.
		{
			name: "root-required-nonroot", base: "static", app: "go-static-amd64", user: strPtr("0"),
			policy:   func(p *targets.Policy) { p.Require = []string{"nonroot"} },
			want:     map[string]verify.Status{"user.nonroot": fail, "run.start": pass},
			evidence: map[string]string{"user.nonroot": `the image runs as root (user "0")`},
		},
		{
			name: "root-warn", base: "static", app: "go-static-amd64", user: strPtr("root"),
			passed: true,
			want:   map[string]verify.Status{"user.nonroot": warn, "run.start": pass},
		},
		// 13. no CA bundle.
		{
			name: "no-certs", base: "static", app: "go-static-amd64",
			extra:    func(*testing.T, *corpus) []entry { return []entry{whiteout("etc/ssl/certs")} },
			want:     map[string]verify.Status{"files.certs": fail, "run.start": pass},
			evidence: map[string]string{"files.certs": "no CA bundle is in the image"},
			realMore: func(t *testing.T, r *reality, _ *corpus) {
				t.Helper()
				if res := r.run(t, nil, "--certs"); res.ok() {
					t.Errorf("reality: --certs succeeded in an image kiln says has no CA roots: %v", res)
				}
			},
		},
		// 14. malformed binaries.
		{
			name: "garbage", base: "static",
			extra: func(*testing.T, *corpus) []entry { return []entry{file("app", 0o755, garbage(4096))} },
			want:  map[string]verify.Status{"elf.arch": fail},
		},
		{
			name: "truncated-elf", base: "static",
			extra: func(t *testing.T, c *corpus) []entry {
				return []entry{file("app", 0o755, c.read(t, "go-static-amd64")[:4096])}
			},
			want:     map[string]verify.Status{"elf.arch": fail},
			evidence: map[string]string{"elf.arch": "malformed ELF"},
		},
	}
}

// staticFailures are the checks whose failure means the binary cannot
// start, whatever run.start says.
var staticFailures = []string{"elf.arch", "link.interp", "link.needed", "link.versions"}

func TestCorpus(t *testing.T) {
	c := newCorpus(t)
	for _, tc := range corpusCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runCase(t, c, tc)
		})
	}
}

func runCase(t *testing.T, c *corpus, tc corpusCase) {
	arch := tc.arch
	if arch == "" {
		arch = "amd64"
	}
	var entries []entry
	if tc.app != "" {
		mode := tc.mode
		if mode == 0 {
			mode = 0o755
		}
		entries = append(entries, file("app", mode, c.read(t, tc.app)))
	}
	if tc.extra != nil {
		entries = append(entries, tc.extra(t, c)...)
	}
	base := c.base(t, tc.base, arch)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer(t, entries)})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Entrypoint, cfg.Cmd = []string{"/app"}, nil
	if tc.user != nil {
		cfg.User = *tc.user
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	baseName := "kiln.test/testbase/" + tc.base
	img = mutate.Annotations(img, map[string]string{
		"org.opencontainers.image.base.name":   baseName,
		"org.opencontainers.image.base.digest": c.digests[tc.base].String(),
	}).(v1.Image)

	pol := targets.DefaultPolicy()
	pol.Args = []string{"--version"}
	if strings.HasPrefix(tc.app, "go-") {
		pol.LookupArgs = []string{"--lookup", "{name}"}
	}
	if tc.policy != nil {
		tc.policy(&pol)
	}
	runner := verify.NewRunner()
	runner.TempDir = t.TempDir()
	rep, err := verify.Image(context.Background(), verify.Input{
		Image: img, Ref: "oci:corpus:" + tc.name, Platform: targets.Platform{OS: "linux", Arch: cf.Architecture},
		Policy: pol, BaseName: baseName, BaseDigest: c.digests[tc.base].String(), Runner: runner,
	})
	if err != nil {
		t.Fatalf("verify.Image: %v", err)
	}
	t.Logf("kiln: %s", summary(rep))

	// kiln's verdict, as the case says.
	if rep.Passed != tc.passed {
		t.Errorf("passed = %v, want %v", rep.Passed, tc.passed)
	}
	for id, want := range tc.want {
		f, ok := rep.Find(id)
		switch {
		case !ok:
			t.Errorf("%s: no finding, want %s", id, want)
		case f.Status != want:
			t.Errorf("%s: %s (%s), want %s", id, f.Status, f.Evidence, want)
		}
	}
	for id, sub := range tc.evidence {
		if f, ok := rep.Find(id); ok && !strings.Contains(f.Evidence, sub) {
			t.Errorf("%s evidence %q does not contain %q", id, f.Evidence, sub)
		}
	}
	checkGolden(t, tc.name, normalise(rep, c.dir, runner.TempDir))

	// kiln's verdict against reality.
	fsys, err := verify.Flatten(img, verify.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r := newReality(t, img, fsys)
	res := r.run(t, nil, pol.Args...)
	t.Logf("reality: /app %s: %v", strings.Join(pol.Args, " "), res)
	start, hasStart := rep.Find("run.start")
	switch {
	case !hasStart:
		// verify stopped before running it (the binary is not an ELF file).
	case start.Status == verify.Pass && !res.ok():
		t.Errorf("DISAGREEMENT: run.start passed (%s), but the binary does not start for real: %v", start.Evidence, res)
	case start.Status == verify.Fail && res.ok():
		t.Errorf("DISAGREEMENT: run.start failed (%s), but the binary starts for real: %v", start.Evidence, res)
	case start.Status == verify.Skip:
		t.Errorf("run.start was skipped here (%s): this machine can run it", start.Evidence)
	}
	for _, id := range staticFailures {
		if f, ok := rep.Find(id); ok && f.Status == verify.Fail && res.ok() {
			t.Errorf("DISAGREEMENT: %s failed (%s), but the binary starts for real: %v", id, f.Evidence, res)
		}
	}
	if tc.realStderr != "" && !strings.Contains(res.stderr, tc.realStderr) {
		t.Errorf("reality: stderr %q does not contain %q", res.stderr, tc.realStderr)
	}
	if res.ok() && strings.HasPrefix(tc.app, "go-") {
		checkRealResolver(t, r, rep)
	}
	if tc.realMore != nil {
		tc.realMore(t, r, c)
	}
}

var realOrderRE = regexp.MustCompile(`hostLookupOrder\(` + regexp.QuoteMeta(verify.ProbeName) + `\) = (\S+)`)

// checkRealResolver runs the lookup for real, in a network namespace with
// nothing to answer it, only to read the resolver Go picks, and compares
// it with dns.resolver's prediction.
func checkRealResolver(t *testing.T, r *reality, rep *verify.Report) {
	t.Helper()
	f, ok := rep.Find("dns.resolver")
	if !ok || (f.Status != verify.Pass && f.Status != verify.Fail) {
		return
	}
	predicted := "go"
	if strings.HasPrefix(f.Evidence, "cgo resolver") || strings.Contains(f.Evidence, "Go will use the cgo resolver") {
		predicted = "cgo"
	}
	res := r.run(t, []string{"GODEBUG=netdns=2"}, "--lookup", verify.ProbeName)
	m := realOrderRE.FindStringSubmatch(res.stderr)
	if m == nil {
		t.Errorf("reality: the lookup printed no hostLookupOrder line: %v", res)
		return
	}
	used := "go"
	if m[1] == "cgo" {
		used = "cgo"
	}
	t.Logf("reality: hostLookupOrder = %s", m[1])
	if used != predicted {
		t.Errorf("DISAGREEMENT: dns.resolver predicted the %s resolver (%s), but the binary picked %s for real", predicted, f.Evidence, m[1])
	}
}

func summary(rep *verify.Report) string {
	var parts []string
	for _, f := range rep.Checks {
		parts = append(parts, f.ID+"="+string(f.Status))
	}
	return "passed=" + map[bool]string{true: "true", false: "false"}[rep.Passed] + " " + strings.Join(parts, " ")
}
