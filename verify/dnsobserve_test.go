package verify

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kilnbuild/kiln/targets"
)

// probeImage is an amd64 image holding the probe of kind k as /probe
// (its entrypoint), the libc it needs, and extra files, with env.
func probeImage(t *testing.T, k probeKind, env []string, extra ...hent) Input {
	t.Helper()
	probe := buildProbe(t, k)
	data, err := os.ReadFile(probe.path)
	if err != nil {
		t.Fatal(err)
	}
	ents := append([]hent{hdir("etc", 0o755), hdir("tmp", 0o1777), {path: "probe", mode: 0o755, data: data}}, libcEntries(t, k.libc)...)
	img := testImage(t, append(ents, extra...), false, func(c *v1.Config) {
		c.Entrypoint, c.Env = []string{"/probe"}, env
	})
	pol := targets.DefaultPolicy()
	pol.Args = []string{"id"}
	pol.LookupArgs = []string{"lookup", "{name}"}
	pol.RunTimeout = 10 * time.Second
	runner := NewRunner()
	runner.TempDir = sandboxTempDir("")
	return Input{Image: img, Ref: "probe", Platform: targets.Platform{OS: "linux", Arch: "amd64"}, Policy: pol, Runner: runner}
}

// TestDNSFingerprint establishes, for every Go release the differential
// tests build with and for Go's resolver, glibc's and musl's, the feature
// run.resolver tells them apart by: Go's queries carry an EDNS0 OPT
// record of 1232 bytes, libc's carry none (glibc adds one of 1200 bytes
// with "options edns0", musl never). Here the resolver is forced with
// GODEBUG, so that each combination is seen; kiln's own run never sets
// it. run.resolver must report what was forced, as predicted.
func TestDNSFingerprint(t *testing.T) {
	diffNeedRoot(t)
	if why := SandboxCheck(context.Background()); why != "" {
		diffMissing(t, "the sandbox cannot run here: "+why)
	}
	type tc struct {
		k      probeKind
		mode   string // go or cgo
		resolv string // /etc/resolv.conf, "" for none
	}
	var cases []tc
	for _, tcn := range diffToolchains {
		cases = append(cases, tc{probeKind{toolchain: tcn, libc: "none"}, "go", ""})
		for _, libc := range []string{"glibc", "musl"} {
			for _, mode := range []string{"go", "cgo"} {
				cases = append(cases, tc{probeKind{toolchain: tcn, libc: libc}, mode, ""})
			}
		}
	}
	cases = append(cases,
		tc{probeKind{toolchain: "local", libc: "glibc"}, "cgo", "nameserver 10.0.0.1\noptions edns0 trust-ad\n"},
		tc{probeKind{toolchain: "local", libc: "glibc"}, "go", "nameserver 10.0.0.1\noptions edns0 trust-ad use-vc\n"},
		tc{probeKind{toolchain: "local", libc: "musl"}, "cgo", "nameserver 10.0.0.1\noptions edns0\n"},
		tc{probeKind{toolchain: "local", libc: "glibc"}, "cgo", "nameserver 10.0.0.1\noptions single-request-reopen\n"},
	)
	for _, c := range cases {
		name := c.k.String() + "/" + c.mode
		if c.resolv != "" {
			name += "/" + strings.Fields(strings.SplitN(c.resolv, "\n", 2)[1])[1]
		}
		t.Run(name, func(t *testing.T) {
			var extra []hent
			if c.resolv != "" {
				extra = append(extra, hfile("etc/resolv.conf", 0o644, c.resolv))
			}
			rep, err := Image(context.Background(), probeImage(t, c.k, []string{"GODEBUG=netdns=" + c.mode}, extra...))
			if err != nil {
				t.Fatal(err)
			}
			d, _ := rep.Find("dns.resolver")
			r, _ := rep.Find("run.resolver")
			t.Logf("dns.resolver %s: %s; run.resolver %s: %s", d.Status, d.Evidence, r.Status, r.Evidence)
			if r.Status != Pass || !strings.HasPrefix(r.Evidence, c.mode+" resolver, as predicted") {
				t.Errorf("run.resolver = %s %q, want pass: %s resolver, as predicted", r.Status, r.Evidence, c.mode)
			}
		})
	}
}

// run.resolver fails when the binary uses another resolver than
// dns.resolver predicted: the run is a check, not a confirmation.
func TestRunResolverDisagreementFails(t *testing.T) {
	diffNeedRoot(t)
	if why := SandboxCheck(context.Background()); why != "" {
		diffMissing(t, "the sandbox cannot run here: "+why)
	}
	in := probeImage(t, probeKind{toolchain: "local", libc: "glibc"}, []string{"GODEBUG=netdns=cgo"})
	s := &subject{in: in}
	cf, _ := in.Image.ConfigFile()
	s.cfg = cf
	fsys, err := Flatten(in.Image, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s.fsys, s.env = fsys, runtimeEnv(cf.Config.Env)
	s.proc = &proc{fsys: fsys, env: s.env, cwd: "/"}
	rep := &Report{Binary: "/probe"}
	s.checkRun(context.Background(), rep, Prediction{Resolver: ResolverGo, Order: "files,dns", Rule: "test"})
	r, _ := rep.Find("run.resolver")
	if r.Status != Fail || !strings.Contains(r.Evidence, "but the binary used cgo") {
		t.Errorf("run.resolver = %s %q, want a fail naming the cgo resolver the binary used", r.Status, r.Evidence)
	}
}
