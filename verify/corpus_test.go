package verify_test

import (
	"context"
	"flag"
	"regexp"
	"slices"
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
	app    string // artifact written to /app; "" when extra writes the binary
	mode   int64  // /app's mode; 0 is 0755
	entry  string // the entrypoint; "" is /app
	extra  []entry
	post   func(t *testing.T, img v1.Image) []entry // a second layer, made from the image so far
	env    []string                                 // added to the config's Env
	user   *string                                  // the config's User; nil keeps the base's
	policy func(p *targets.Policy)

	passed   bool
	want     map[string]verify.Status
	evidence map[string]string // check id -> a substring of its evidence

	realStderr string                                    // in the real smoke run's stderr
	realMore   func(t *testing.T, r *reality, c *corpus) // further real runs
}

func strPtr(s string) *string { return &s }

// ldLink is the amd64 base's PT_INTERP link, which cases delete or replace.
const ldLink = "lib64/ld-linux-x86-64.so.2"

func corpusCases() []corpusCase {
	pass, fail, warn, skip := verify.Pass, verify.Fail, verify.Warn, verify.Skip
	certsOK := func(t *testing.T, r *reality, _ *corpus) {
		t.Helper()
		if res := r.run(t, "/app", nil, "--certs"); !res.ok() {
			t.Errorf("reality: --certs failed in an image kiln says has CA roots: %v", res)
		}
	}
	// The headers of a Go binary without the segments they describe.
	truncatedApp := fileFrom("app", 0o755, func(t *testing.T, c *corpus) []byte { return c.read(t, "go-static-amd64")[:4096] })
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
			want:       map[string]verify.Status{"link.interp": pass, "link.needed": fail, "run.start": fail},
			evidence:   map[string]string{"link.needed": "libkilnx.so (needed by /app)"},
			realStderr: "libkilnx.so: cannot open shared object file",
		},
		{
			name: "needed-runpath", base: "base", app: "c-kilnx-runpath",
			extra:    []entry{built("kiln-lib/libkilnx.so", "libkilnx.so")},
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
			extra: []entry{built("lib/x86_64-linux-gnu/libfoo.so.1", "libfoo-old")},
			want:  map[string]verify.Status{"link.needed": pass, "link.versions": fail, "run.start": fail},
			evidence: map[string]string{"link.needed": "/lib/x86_64-linux-gnu/libfoo.so.1 (system directory)",
				"link.versions": "/app needs FOO_2.0 from libfoo.so.1, but /lib/x86_64-linux-gnu/libfoo.so.1 defines up to FOO_1.0"},
			realStderr: "version `FOO_2.0' not found",
		},
		{
			name: "versions-foo-new", base: "base", app: "c-foo",
			extra:    []entry{built("lib/x86_64-linux-gnu/libfoo.so.1", "libfoo-new")},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "link.versions": pass, "run.start": pass},
			evidence: map[string]string{"run.start": "foo1() + foo2() = 3"},
		},
		{
			// A later layer replaces the base's libc.so.6 with one whose
			// versions stop at GLIBC_2.31 (Debian 11's).
			name: "versions-glibc-old", base: "base", app: "c-hello",
			extra: []entry{built("lib/x86_64-linux-gnu/libc.so.6", "libc-old")},
			want:  map[string]verify.Status{"link.needed": pass, "link.versions": fail, "run.start": fail},
			evidence: map[string]string{
				"link.versions": "/app needs GLIBC_2.34 from libc.so.6, but /lib/x86_64-linux-gnu/libc.so.6 defines up to GLIBC_2.31"},
			realStderr: "version `GLIBC_2.34' not found",
		},
		// 8. an arm64 binary in an image that says amd64.
		{
			name: "wrong-arch", base: "static", app: "go-static-arm64",
			// A runtime runs a linux/amd64 image natively on this amd64
			// host, so the arm64 binary does not start: run.start must
			// not pass by running it under qemu.
			want:     map[string]verify.Status{"elf.arch": fail, "run.start": fail},
			evidence: map[string]string{"elf.arch": "is ELFCLASS64 EM_AARCH64 (arm64) but the image is linux/amd64"},
		},
		// 9. the loader deleted by a whiteout.
		{
			name: "whiteout-loader", base: "base", app: "go-glibc-amd64",
			extra: []entry{whiteout(ldLink)},
			want:  map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "PT_INTERP /lib64/ld-linux-x86-64.so.2 is not in the image",
				"run.start": "no such file or directory"},
		},
		// 10. loader links that climb out of the root or point at the host.
		{
			// ".." stops at the image root: this reaches /kiln-ld, which
			// only the image has (the host has no /kiln-ld).
			name: "symlink-escape-to-image", base: "base", app: "go-glibc-amd64",
			extra: []entry{
				fileFrom("kiln-ld/ld-linux-x86-64.so.2", 0o755, func(t *testing.T, c *corpus) []byte {
					return c.baseFile(t, "base", "amd64", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
				}),
				symlink(ldLink, "../../../../../kiln-ld/ld-linux-x86-64.so.2"),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.interp": pass, "link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.interp": "PT_INTERP /lib64/ld-linux-x86-64.so.2 → /kiln-ld/ld-linux-x86-64.so.2 is in the image"},
		},
		{
			// This reaches /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2,
			// which the host has (merged /usr) and the image does not.
			name: "symlink-escape-to-host", base: "base", app: "go-glibc-amd64",
			extra:    []entry{symlink(ldLink, "../../../../../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")},
			want:     map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "is not in the image"},
		},
		{
			// Inside the root this names itself.
			name: "symlink-loop", base: "base", app: "go-glibc-amd64",
			extra:    []entry{symlink(ldLink, "../../../../../lib64/ld-linux-x86-64.so.2")},
			want:     map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "symlink loop", "run.start": "too many levels of symbolic links"},
		},
		{
			name: "symlink-absolute-to-host", base: "base", app: "go-glibc-amd64",
			extra:    []entry{symlink(ldLink, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")},
			want:     map[string]verify.Status{"link.interp": fail, "link.needed": fail, "run.start": fail},
			evidence: map[string]string{"link.interp": "is not in the image", "run.start": "no such file or directory"},
		},
		// 11. nsswitch.conf that only libc can follow.
		{
			name: "nsswitch-ldap-want-go", base: "base", app: "go-glibc-amd64",
			extra:    []entry{file("etc/nsswitch.conf", 0o644, []byte("hosts: files ldap dns\n"))},
			policy:   func(p *targets.Policy) { p.Resolver = "go" },
			want:     map[string]verify.Status{"dns.resolver": fail, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"dns.resolver": "verify.resolver is go, but Go will use the cgo resolver", "run.resolver": "cgo resolver, as predicted"},
		},
		{
			name: "nsswitch-ldap-want-cgo", base: "base", app: "go-glibc-amd64",
			extra:    []entry{file("etc/nsswitch.conf", 0o644, []byte("hosts: files ldap dns\n"))},
			policy:   func(p *targets.Policy) { p.Resolver = "cgo" },
			passed:   true,
			want:     map[string]verify.Status{"dns.resolver": pass, "run.start": pass, "run.resolver": pass},
			evidence: map[string]string{"dns.resolver": "cgo resolver", "run.resolver": "cgo resolver, as predicted"},
		},
		// More resolver predictions, each checked against the choice
		// the binary makes for real.
		resolverCase("resolver-godebug-cgo", "base", "go-glibc-amd64", "cgo", nil, []string{"GODEBUG=netdns=cgo"}),
		resolverCase("resolver-localdomain", "base", "go-glibc-amd64", "cgo", nil, []string{"LOCALDOMAIN=corp.example"}),
		resolverCase("resolver-unknown-option", "base", "go-glibc-amd64", "cgo",
			map[string]string{"etc/resolv.conf": "nameserver 192.0.2.53\noptions inet6\n"}, nil),
		resolverCase("resolver-known-options", "base", "go-glibc-amd64", "go",
			map[string]string{"etc/resolv.conf": "nameserver 192.0.2.53\noptions ndots:2 timeout:1 rotate\n"}, nil),
		resolverCase("resolver-myhostname", "base", "go-glibc-amd64", "go",
			map[string]string{"etc/nsswitch.conf": "hosts: files myhostname dns\n"}, nil),
		resolverCase("resolver-mdns-minimal", "base", "go-glibc-amd64", "go",
			map[string]string{"etc/nsswitch.conf": "hosts: files mdns4_minimal [NOTFOUND=return] dns\n"}, nil),
		resolverCase("resolver-dns-criteria", "base", "go-glibc-amd64", "cgo",
			map[string]string{"etc/nsswitch.conf": "hosts: files dns [!UNAVAIL=return] \n"}, nil),
		resolverCase("resolver-static-ldap", "static", "go-static-amd64", "go",
			map[string]string{"etc/nsswitch.conf": "hosts: files ldap dns\n"}, nil),
		resolverCase("resolver-musl-ldap", "alpine", "go-musl-amd64", "cgo",
			map[string]string{"etc/nsswitch.conf": "hosts: files ldap dns\n"}, nil),
		// 12. root.
		{
			name: "root-required-nonroot", base: "static", app: "go-static-amd64", user: strPtr("0"),
			policy:   func(p *targets.Policy) { p.Require = []string{"nonroot"} },
			want:     map[string]verify.Status{"user.nonroot": fail, "run.start": pass},
			evidence: map[string]string{"user.nonroot": `the image runs as root (user "0" is root, uid 0`},
		},
		{
			name: "root-warn", base: "static", app: "go-static-amd64", user: strPtr("root"),
			passed: true,
			want:   map[string]verify.Status{"user.nonroot": warn, "run.start": pass},
		},
		// 13. no CA bundle.
		{
			name: "no-certs", base: "static", app: "go-static-amd64",
			extra:    []entry{whiteout("etc/ssl/certs")},
			want:     map[string]verify.Status{"files.certs": fail, "run.start": pass},
			evidence: map[string]string{"files.certs": "no CA bundle is in the image"},
			realMore: func(t *testing.T, r *reality, _ *corpus) {
				t.Helper()
				if res := r.run(t, "/app", nil, "--certs"); res.ok() {
					t.Errorf("reality: --certs succeeded in an image kiln says has no CA roots: %v", res)
				}
			},
		},
		// 14. malformed binaries.
		{
			name: "app-not-executable", base: "static", app: "go-static-amd64", mode: 0o644,
			want:     map[string]verify.Status{"elf.arch": fail},
			evidence: map[string]string{"elf.arch": "is not executable (mode 644)"},
		},
		{
			name: "garbage", base: "static",
			extra: []entry{file("app", 0o755, garbage(4096))},
			want:  map[string]verify.Status{"elf.arch": fail},
		},
		{
			name: "truncated-elf", base: "static",
			extra: []entry{truncatedApp},
			// The headers are intact, the segments they describe are not
			// in the file: the kernel maps it and the process dies.
			want:     map[string]verify.Status{"elf.arch": fail},
			evidence: map[string]string{"elf.arch": "malformed ELF"},
		},
		{
			// The same without a run: a malformed ELF must still fail
			// (SPEC §4), from the headers alone.
			name: "truncated-elf-norun", base: "static",
			extra:    []entry{truncatedApp},
			policy:   func(p *targets.Policy) { p.Run = false },
			want:     map[string]verify.Status{"elf.arch": fail},
			evidence: map[string]string{"elf.arch": "malformed ELF"},
		},
		{
			// A multi-call binary picks what to do from argv[0]: /bin/sh
			// is busybox's shell, whatever the link resolves to.
			name: "busybox-argv0", base: "alpine", entry: "/bin/sh",
			policy: func(p *targets.Policy) { p.Args = []string{"-c", "echo started"} },
			passed: true,
			want:   map[string]verify.Status{"elf.arch": pass, "link.interp": skip, "run.start": pass},
		},
		// More of the loader's search, each against the real loader.
		{
			// ld.so.conf is only read by ldconfig: a directory listed
			// there but not in the cache is not searched.
			name: "ld-so-conf-only", base: "base", app: "c-kilnx",
			extra: []entry{
				built("usr/local/lib/libkilnx.so", "libkilnx.so"),
				file("etc/ld.so.conf", 0o644, []byte("/lib/x86_64-linux-gnu\n/usr/local/lib\n")),
			},
			want:       map[string]verify.Status{"link.needed": fail, "run.start": fail},
			evidence:   map[string]string{"link.needed": "libkilnx.so (needed by /app)"},
			realStderr: "libkilnx.so: cannot open shared object file",
		},
		{
			// The same after ldconfig -r: the cache has it.
			name: "ld-so-cache", base: "base", app: "c-kilnx",
			extra: []entry{
				built("usr/local/lib/libkilnx.so", "libkilnx.so"),
				file("etc/ld.so.conf", 0o644, []byte("/lib/x86_64-linux-gnu\n/usr/local/lib\n")),
			},
			post:     ldconfigLayer,
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/usr/local/lib/libkilnx.so (ld.so.cache)", "run.start": "kilnx() = 42"},
		},
		{
			name: "ld-library-path", base: "base", app: "c-kilnx",
			extra:    []entry{built("opt/kiln/lib/libkilnx.so", "libkilnx.so")},
			env:      []string{"LD_LIBRARY_PATH=/opt/kiln/lib"},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/opt/kiln/lib/libkilnx.so (LD_LIBRARY_PATH)"},
		},
		{
			// DT_RUNPATH applies to the object's own DT_NEEDED only:
			// libkilnx.so is found through /app's, libkilny.so (needed by
			// libkilnx.so) is not.
			name: "runpath-not-transitive", base: "base", app: "c-kilnx-y-runpath",
			extra: []entry{
				built("kiln-lib/libkilnx.so", "libkilnx-y.so"),
				built("kiln-lib/libkilny.so", "libkilny.so"),
			},
			want:       map[string]verify.Status{"link.needed": fail, "run.start": fail},
			evidence:   map[string]string{"link.needed": "libkilny.so (needed by /kiln-lib/libkilnx.so)"},
			realStderr: "libkilny.so: cannot open shared object file",
		},
		{
			// DT_RPATH of /app applies to what its libraries need too.
			name: "rpath-transitive", base: "base", app: "c-kilnx-y-rpath",
			extra: []entry{
				built("kiln-lib/libkilnx.so", "libkilnx-y.so"),
				built("kiln-lib/libkilny.so", "libkilny.so"),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/kiln-lib/libkilny.so (DT_RPATH of /app)", "run.start": "kilnx() = 42"},
		},
		{
			// musl searches the run path of every object up the chain
			// that needed a library, each with its own $ORIGIN.
			name: "musl-runpath-chain", base: "alpine", app: "musl-c-kilnx-y-runpath",
			extra: []entry{
				built("kiln-lib/libkilnx.so", "musl-libkilnx-y.so"),
				built("kiln-lib/libkilny.so", "musl-libkilny.so"),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/kiln-lib/libkilny.so (rpath of /app)", "run.start": "kilnx() = 42"},
		},
		{
			// $ORIGIN of a library is the directory the loader found it
			// in, symlinks not resolved: /kiln-lib here, not /opt/real.
			name: "origin-of-symlinked-lib", base: "base", app: "c-kilnx-runpath",
			extra: []entry{
				built("opt/real/libkilnx.so", "libkilnx-y-origin.so"),
				symlink("kiln-lib/libkilnx.so", "/opt/real/libkilnx.so"),
				built("kiln-lib/deps/libkilny.so", "libkilny.so"),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"run.start": "kilnx() = 42"},
		},
		{
			// The converse: the dependency sits next to the symlink's
			// target, where the loader does not look.
			name: "origin-of-symlinked-lib-target", base: "base", app: "c-kilnx-runpath",
			extra: []entry{
				built("opt/real/libkilnx.so", "libkilnx-y-origin.so"),
				symlink("kiln-lib/libkilnx.so", "/opt/real/libkilnx.so"),
				built("opt/real/deps/libkilny.so", "libkilny.so"),
			},
			want:       map[string]verify.Status{"link.needed": fail, "run.start": fail},
			realStderr: "libkilny.so: cannot open shared object file",
		},
		{
			// The binary's $ORIGIN comes from /proc/self/exe: the
			// symlink /app resolved.
			name: "origin-of-symlinked-binary", base: "base",
			extra: []entry{
				built("opt/kiln/bin/app", "c-kilnx-runpath"),
				symlink("app", "opt/kiln/bin/app"),
				built("opt/kiln/bin/kiln-lib/libkilnx.so", "libkilnx.so"),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/opt/kiln/bin/kiln-lib/libkilnx.so (DT_RUNPATH of /opt/kiln/bin/app)"},
		},
		{
			name: "origin-of-symlinked-binary-link-dir", base: "base",
			extra: []entry{
				built("opt/kiln/bin/app", "c-kilnx-runpath"),
				symlink("app", "opt/kiln/bin/app"),
				built("kiln-lib/libkilnx.so", "libkilnx.so"),
			},
			want:       map[string]verify.Status{"link.needed": fail, "run.start": fail},
			realStderr: "libkilnx.so: cannot open shared object file",
		},
		{
			// The loader skips a library of another machine and searches
			// on.
			name: "needed-wrong-arch-first", base: "base", app: "c-kilnx-runpath",
			extra: []entry{
				built("kiln-lib/libkilnx.so", "arm64-libkilnx.so"),
				built("lib/x86_64-linux-gnu/libkilnx.so", "libkilnx.so"),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/lib/x86_64-linux-gnu/libkilnx.so (system directory)"},
		},
		{
			name: "musl-default-path", base: "alpine", app: "musl-c-kilnx",
			extra:    []entry{built("usr/lib/libkilnx.so", "musl-libkilnx.so")},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "link.family": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/usr/lib/libkilnx.so (musl default path)"},
		},
		{
			name: "musl-path-file", base: "alpine", app: "musl-c-kilnx",
			extra: []entry{
				built("opt/kiln/lib/libkilnx.so", "musl-libkilnx.so"),
				file("etc/ld-musl-x86_64.path", 0o644, []byte("/lib\n/opt/kiln/lib\n")),
			},
			passed:   true,
			want:     map[string]verify.Status{"link.needed": pass, "run.start": pass},
			evidence: map[string]string{"link.needed": "/opt/kiln/lib/libkilnx.so"},
		},
		{
			// musl's path file replaces its default path, /usr/lib included.
			name: "musl-path-file-replaces-defaults", base: "alpine", app: "musl-c-kilnx",
			extra: []entry{
				built("usr/lib/libkilnx.so", "musl-libkilnx.so"),
				file("etc/ld-musl-x86_64.path", 0o644, []byte("/lib\n/opt/kiln/lib\n")),
			},
			want:       map[string]verify.Status{"link.needed": fail, "run.start": fail},
			evidence:   map[string]string{"link.needed": "libkilnx.so (needed by /app)"},
			realStderr: "libkilnx.so",
		},
	}
}

// resolverCase is an image whose only question is the resolver: want is
// the resolver Go picks for real, which dns.resolver must predict.
func resolverCase(name, base, app, want string, files map[string]string, env []string) corpusCase {
	var extra []entry
	for p, content := range files {
		extra = append(extra, file(p, 0o644, []byte(content)))
	}
	slices.SortFunc(extra, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	return corpusCase{
		name: name, base: base, app: app, env: env,
		extra:    extra,
		passed:   true,
		want:     map[string]verify.Status{"dns.resolver": verify.Pass, "run.start": verify.Pass, "run.resolver": verify.Pass},
		evidence: map[string]string{"dns.resolver": want + " resolver (", "run.resolver": want + " resolver, as predicted"},
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
	for _, e := range tc.extra {
		if e.from != nil {
			e.data = e.from(t, c)
		}
		entries = append(entries, e)
	}
	base := c.base(t, tc.base, arch)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer(t, entries)})
	if err != nil {
		t.Fatal(err)
	}
	if tc.post != nil {
		if img, err = mutate.Append(img, mutate.Addendum{Layer: layer(t, tc.post(t, img))}); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	entrypoint := tc.entry
	if entrypoint == "" {
		entrypoint = "/app"
	}
	cfg.Entrypoint, cfg.Cmd = []string{entrypoint}, nil
	cfg.Env = append(append([]string{}, cfg.Env...), tc.env...)
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
	res := r.run(t, entrypoint, nil, pol.Args...)
	t.Logf("reality: %s %s: %v", entrypoint, strings.Join(pol.Args, " "), res)
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
	if why := loaderFailure(res); why != "" && !anyFailed(rep, staticFailures) {
		t.Errorf("DISAGREEMENT: for real, %s (%v), but %s all passed", why, res, strings.Join(staticFailures, ", "))
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

// loaderFailure says why a real run failed before main, when it did: the
// kernel could not exec the binary or its loader, or the loader could not
// load the libraries.
func loaderFailure(res realRun) string {
	switch {
	case res.ok():
		return ""
	case strings.Contains(res.stderr, "chroot: failed to run command"):
		return "the kernel could not start /app"
	case strings.Contains(res.stderr, "error while loading shared libraries"),
		strings.Contains(res.stderr, "Error loading shared library"),
		strings.Contains(res.stderr, "Error relocating"),
		strings.Contains(res.stderr, "' not found (required by"):
		return "the loader could not load /app's libraries"
	}
	return ""
}

func anyFailed(rep *verify.Report, ids []string) bool {
	for _, id := range ids {
		if f, ok := rep.Find(id); ok && f.Status == verify.Fail {
			return true
		}
	}
	return false
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
	res := r.run(t, "/app", []string{"GODEBUG=" + netdnsDebug(r.env)}, "--lookup", verify.ProbeName)
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

// netdnsDebug is the image's GODEBUG with the netdns debug level 2
// added, its resolver mode (netdns=go or netdns=cgo) kept: netdns=cgo
// becomes netdns=cgo+2.
func netdnsDebug(env []string) string {
	var settings []string
	mode := ""
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			continue
		}
		settings = settings[:0]
		for _, s := range strings.Split(v, ",") {
			if m, ok := strings.CutPrefix(s, "netdns="); ok {
				mode = strings.Trim(strings.Trim(m, "0123456789"), "+")
				continue
			}
			if s != "" {
				settings = append(settings, s)
			}
		}
	}
	if mode != "" {
		return strings.Join(append(settings, "netdns="+mode+"+2"), ",")
	}
	return strings.Join(append(settings, "netdns=2"), ",")
}

func summary(rep *verify.Report) string {
	var parts []string
	for _, f := range rep.Checks {
		parts = append(parts, f.ID+"="+string(f.Status))
	}
	return "passed=" + map[bool]string{true: "true", false: "false"}[rep.Passed] + " " + strings.Join(parts, " ")
}
