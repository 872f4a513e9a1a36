package sign_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kilnbuild/kiln/internal/testregistry"
	"github.com/kilnbuild/kiln/sign"
)

// password is distinctive so a test can tell if it leaks into a message.
const password = "kiln-test-pw-7c1e9a"

// fixture is what the end-to-end tests share: a real registry, the real
// cosign CLI and two key pairs it generated.
type fixture struct {
	cosign   string
	registry string // 127.0.0.1:PORT
	keyDir   string // cosign.key, cosign.pub, signed with password
	otherPub string // a public key that signed nothing
	home     string
}

var (
	fixOnce    sync.Once
	fix        *fixture
	fixErr     string // why the fixture is unavailable
	fixMissing bool   // because a tool is not installed (a skip outside CI)
	fixStop    func()

	appOnce sync.Once
	appBin  string // testdata/sbomapp, built once
	appErr  error
	appDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixStop != nil {
		fixStop()
	}
	if appDir != "" {
		os.RemoveAll(appDir)
	}
	os.Exit(code)
}

// appBuildInfo builds testdata/sbomapp, a real program with module
// dependencies (from the module cache, no network), and reads its build
// info. Test binaries record no dependencies, so they will not do.
func appBuildInfo(t *testing.T) *buildinfo.BuildInfo {
	t.Helper()
	appOnce.Do(func() {
		appDir, appErr = os.MkdirTemp("", "kiln-sbomapp-")
		if appErr != nil {
			return
		}
		appBin = filepath.Join(appDir, "sbomapp")
		cmd := exec.Command("go", "build", "-trimpath", "-o", appBin, "./testdata/sbomapp")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly -buildvcs=false", "GOPROXY=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("go build ./testdata/sbomapp: %v\n%s", err, out)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	bi, err := buildinfo.ReadFile(appBin)
	if err != nil {
		t.Fatal(err)
	}
	return bi
}

// tool finds a command on PATH or in $(go env GOPATH)/bin, where go
// install puts it.
func tool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		f := &fixture{cosign: tool("cosign")}
		if f.cosign == "" {
			fixErr, fixMissing = "cosign CLI not found on PATH or in $(go env GOPATH)/bin: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5", true
			return
		}
		reg := tool("docker-registry")
		if reg == "" {
			fixErr, fixMissing = "docker-registry not found: apt-get install docker-registry", true
			return
		}
		root, err := os.MkdirTemp("", "kiln-sign-e2e-")
		if err != nil {
			fixErr = err.Error()
			return
		}
		f.home = filepath.Join(root, "home")
		stopReg, addr, err := startRegistry(reg, root)
		fixStop = func() {
			if stopReg != nil {
				stopReg()
			}
			os.RemoveAll(root)
		}
		if err != nil {
			fixErr = "starting docker-registry: " + err.Error()
			return
		}
		f.registry = addr
		f.keyDir = filepath.Join(root, "keys")
		other := filepath.Join(root, "other")
		for _, d := range []string{f.home, f.keyDir, other} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				fixErr = err.Error()
				return
			}
		}
		for _, d := range []string{f.keyDir, other} {
			cmd := exec.Command(f.cosign, "generate-key-pair")
			cmd.Dir = d
			cmd.Env = append(f.env(), "COSIGN_PASSWORD="+password)
			if out, err := cmd.CombinedOutput(); err != nil {
				fixErr = fmt.Sprintf("cosign generate-key-pair: %v\n%s", err, out)
				return
			}
		}
		f.otherPub = filepath.Join(other, "cosign.pub")
		fix = f
	})
	if fix == nil {
		// A missing tool skips, except under CI, which installs them; a
		// setup that fails with the tools present is a failure.
		if fixMissing && os.Getenv("CI") == "" {
			t.Skip(fixErr)
		}
		t.Fatal(fixErr)
	}
	return fix
}

// startRegistry runs the real registry on a free loopback port.
func startRegistry(bin, root string) (stop func(), addr string, err error) {
	r, err := testregistry.Start(bin, filepath.Join(root, "registry"))
	if err != nil {
		return nil, "", err
	}
	return r.Stop, r.Addr, nil
}

// env is a small, fixed environment for the cosign CLI: its own HOME, no
// proxy or registry credentials from the host.
func (f *fixture) env() []string {
	return []string{"HOME=" + f.home, "PATH=" + os.Getenv("PATH"), "TUF_ROOT=" + filepath.Join(f.home, "tuf")}
}

// run runs the cosign CLI and returns stdout, stderr and its error.
func (f *fixture) run(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(f.cosign, args...)
	cmd.Env = f.env()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func (f *fixture) pub() string { return filepath.Join(f.keyDir, "cosign.pub") }
func (f *fixture) key() string { return filepath.Join(f.keyDir, "cosign.key") }

func (f *fixture) mustVerify(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := f.run(args...)
	if err != nil {
		t.Fatalf("cosign %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (f *fixture) mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, err := f.run(args...)
	if err == nil {
		t.Fatalf("cosign %s succeeded, want failure\n%s%s", strings.Join(args, " "), out, errOut)
	}
	if want != "" && !strings.Contains(errOut, want) {
		t.Errorf("cosign %s failed without %q:\n%s", strings.Join(args, " "), want, errOut)
	}
}

func (f *fixture) signer(t *testing.T, o sign.Options) *sign.Signer {
	t.Helper()
	if o.Key == "" {
		o.Key = f.key()
	}
	if o.Password == nil {
		o.Password = func() ([]byte, error) { return []byte(password), nil }
	}
	s, err := sign.New(context.Background(), o)
	if err != nil {
		t.Fatalf("sign.New: %v", err)
	}
	return s
}

// push pushes an image or index to repo by digest and returns its digest
// reference.
func (f *fixture) push(t *testing.T, repo string, what remote.Taggable) name.Digest {
	t.Helper()
	r, err := name.NewRepository(f.registry + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	var d v1.Hash
	switch x := what.(type) {
	case v1.ImageIndex:
		d, _ = x.Digest()
		err = remote.WriteIndex(r.Digest(d.String()), x)
	case v1.Image:
		d, _ = x.Digest()
		err = remote.Write(r.Digest(d.String()), x)
	}
	if err != nil {
		t.Fatalf("pushing to %s: %v", r, err)
	}
	return r.Digest(d.String())
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func randomIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestRegistrySignVerify(t *testing.T) {
	f := getFixture(t)
	s := f.signer(t, sign.Options{})
	ctx := context.Background()

	img := f.push(t, "kiln/sign-image", randomImage(t))
	idx := f.push(t, "kiln/sign-index", randomIndex(t))
	unsigned := f.push(t, "kiln/sign-image", randomImage(t))
	for _, ref := range []name.Digest{img, idx} {
		if err := s.SignRemote(ctx, ref); err != nil {
			t.Fatalf("SignRemote(%s): %v", ref, err)
		}
	}
	for _, ref := range []name.Digest{img, idx} {
		out := f.mustVerify(t, "verify", "--key", f.pub(), "--insecure-ignore-tlog=true", ref.String())
		if !strings.Contains(out, ref.DigestStr()) {
			t.Errorf("cosign verify %s: payload does not name the digest:\n%s", ref, out)
		}
		f.mustFail(t, "no matching signatures", "verify", "--key", f.otherPub, "--insecure-ignore-tlog=true", ref.String())
	}
	f.mustFail(t, "no signatures found", "verify", "--key", f.pub(), "--insecure-ignore-tlog=true", unsigned.String())

	// Signing again with the same key stores nothing new.
	if err := s.SignRemote(ctx, img); err != nil {
		t.Fatalf("second SignRemote: %v", err)
	}
	if n := layersAt(t, img, ".sig"); n != 1 {
		t.Errorf("%d signature layers after signing twice, want 1", n)
	}
}

// layersAt counts the layers of ref's cosign signature (".sig") or
// attestation (".att") image: one per signature or attestation.
func layersAt(t *testing.T, ref name.Digest, suffix string) int {
	t.Helper()
	tag := ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + suffix)
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("reading %s: %v", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("reading %s: %v", tag, err)
	}
	return len(m.Layers)
}

func TestRegistryEnvKey(t *testing.T) {
	f := getFixture(t)
	pem, err := os.ReadFile(f.key())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TEST_SIGNING_KEY", string(pem))
	t.Setenv("COSIGN_PASSWORD", password) // the default password source
	s, err := sign.New(context.Background(), sign.Options{Key: "env://KILN_TEST_SIGNING_KEY"})
	if err != nil {
		t.Fatalf("sign.New with env:// key: %v", err)
	}
	ref := f.push(t, "kiln/env-key", randomImage(t))
	if err := s.SignRemote(context.Background(), ref); err != nil {
		t.Fatalf("SignRemote: %v", err)
	}
	f.mustVerify(t, "verify", "--key", f.pub(), "--insecure-ignore-tlog=true", ref.String())
}

// statement is the part of an in-toto statement the tests look at.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// statements decodes what cosign verify-attestation prints: one DSSE
// envelope per line.
func statements(t *testing.T, out string) []statement {
	t.Helper()
	var sts []statement
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("cosign printed a line that is not an envelope: %v\n%s", err, line)
		}
		raw, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st statement
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	if len(sts) == 0 {
		t.Fatalf("cosign printed no attestations:\n%s", out)
	}
	return sts
}

func testPredicates(t *testing.T) (sbom, report []byte) {
	t.Helper()
	bi := appBuildInfo(t)
	sbom, err := sign.SBOM("kiln-sign-test", bi, sign.BaseRef{Name: "gcr.io/distroless/static-debian12:nonroot", Digest: "sha256:" + strings.Repeat("ab", 32)}, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	report, err = sign.VerificationPredicate{
		KilnVersion: "0.0.0-test", Target: "static", Platform: "linux/amd64", Libc: "none", Passed: true,
		Checks: []sign.Check{
			{ID: "link.mode", Status: "pass", Evidence: "static: no PT_INTERP, no DT_NEEDED"},
			{ID: "run.start", Status: "skip", Evidence: "no user namespaces"},
		},
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return sbom, report
}

// checkAttestations verifies both attestations with the cosign CLI (extra
// is --local-image for a layout) and checks what the payloads say.
func checkAttestations(t *testing.T, f *fixture, target string, digest v1.Hash, extra ...string) {
	t.Helper()
	args := func(typ string) []string {
		a := append([]string{"verify-attestation"}, extra...)
		return append(a, "--key", f.pub(), "--insecure-ignore-tlog=true", "--type", typ, target)
	}

	for _, st := range statements(t, f.mustVerify(t, args("spdxjson")...)) {
		if st.PredicateType != sign.SBOMPredicateType {
			t.Errorf("--type spdxjson returned predicate type %q", st.PredicateType)
		}
		if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != digest.Hex {
			t.Errorf("SBOM statement subject = %+v, want sha256 %s", st.Subject, digest.Hex)
		}
		var doc struct {
			SPDXVersion string `json:"spdxVersion"`
			Packages    []struct {
				Name string `json:"name"`
			} `json:"packages"`
		}
		if err := json.Unmarshal(st.Predicate, &doc); err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, p := range doc.Packages {
			names[p.Name] = true
		}
		if doc.SPDXVersion != "SPDX-2.3" || !names["github.com/google/go-containerregistry"] || !names["golang.org/x/sync"] || !names["stdlib"] {
			t.Errorf("attested SBOM lacks the expected modules: version %q, packages %v", doc.SPDXVersion, names)
		}
	}

	for _, st := range statements(t, f.mustVerify(t, args(sign.VerificationPredicateType)...)) {
		if st.PredicateType != sign.VerificationPredicateType {
			t.Errorf("predicate type %q, want %q", st.PredicateType, sign.VerificationPredicateType)
		}
		var p sign.VerificationPredicate
		if err := json.Unmarshal(st.Predicate, &p); err != nil {
			t.Fatal(err)
		}
		if p.Target != "static" || p.Libc != "none" || !p.Passed || len(p.Checks) != 2 ||
			p.Checks[0] != (sign.Check{ID: "link.mode", Status: "pass", Evidence: "static: no PT_INTERP, no DT_NEEDED"}) {
			t.Errorf("attested verification report = %+v", p)
		}
	}

	f.mustFail(t, "", append(append([]string{"verify-attestation"}, extra...),
		"--key", f.otherPub, "--insecure-ignore-tlog=true", "--type", "spdxjson", target)...)
}

func TestRegistryAttest(t *testing.T) {
	f := getFixture(t)
	s := f.signer(t, sign.Options{})
	ctx := context.Background()
	sbom, report := testPredicates(t)

	ref := f.push(t, "kiln/attest", randomImage(t))
	if err := s.AttestRemote(ctx, ref, "spdxjson", sbom); err != nil {
		t.Fatalf("AttestRemote(spdxjson): %v", err)
	}
	if err := s.AttestRemote(ctx, ref, sign.VerificationPredicateType, report); err != nil {
		t.Fatalf("AttestRemote(verification): %v", err)
	}
	// Attesting the same thing again adds nothing.
	if err := s.AttestRemote(ctx, ref, sign.VerificationPredicateType, report); err != nil {
		t.Fatalf("AttestRemote again: %v", err)
	}
	h, _ := v1.NewHash(ref.DigestStr())
	checkAttestations(t, f, ref.String(), h)

	if n := layersAt(t, ref, ".att"); n != 2 {
		t.Errorf("%d attestation layers, want 2 (SBOM, verification report)", n)
	}

	// An attestation is not a signature: the image itself is unsigned.
	f.mustFail(t, "", "verify", "--key", f.pub(), "--insecure-ignore-tlog=true", ref.String())

	if err := s.AttestRemote(ctx, ref, "not a type", report); err == nil || !strings.Contains(err.Error(), "predicate type") {
		t.Errorf("AttestRemote with a bad predicate type: %v", err)
	}
}

// A release signs its subjects concurrently, and two targets can build the
// same image: attestations for one digest from one Signer must all be kept,
// though each is a read, extend and rewrite of the same .att tag.
func TestRegistryConcurrentAttestations(t *testing.T) {
	f := getFixture(t)
	s := f.signer(t, sign.Options{})
	ref := f.push(t, "kiln/concurrent", randomImage(t))
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := sign.VerificationPredicate{Target: fmt.Sprintf("t%d", i), Platform: "linux/amd64", Libc: "none", Passed: true}.JSON()
			if err == nil {
				err = s.AttestRemote(context.Background(), ref, sign.VerificationPredicateType, p)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := layersAt(t, ref, ".att"); got != n {
		t.Errorf("%d attestations after %d concurrent AttestRemote calls, want %d", got, n, n)
	}
}

func TestLayoutSignVerify(t *testing.T) {
	f := getFixture(t)
	s := f.signer(t, sign.Options{})
	ctx := context.Background()
	sbom, report := testPredicates(t)
	root := t.TempDir()

	for _, tc := range []struct {
		name    string
		subject remote.Taggable
	}{
		{"image", randomImage(t)},
		{"index", randomIndex(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(root, "signed", tc.name)
			d, err := sign.WriteSignedLayout(dir, tc.subject)
			if err != nil {
				t.Fatalf("WriteSignedLayout: %v", err)
			}
			f.mustFail(t, "", "verify", "--local-image", "--key", f.pub(), "--insecure-ignore-tlog=true", dir)

			if err := s.SignLayout(ctx, dir, d); err != nil {
				t.Fatalf("SignLayout: %v", err)
			}
			if err := s.SignLayout(ctx, dir, d); err != nil { // idempotent
				t.Fatalf("SignLayout again: %v", err)
			}
			if err := s.AttestLayout(ctx, dir, d, "spdxjson", sbom); err != nil {
				t.Fatalf("AttestLayout(spdxjson): %v", err)
			}
			if err := s.AttestLayout(ctx, dir, d, sign.VerificationPredicateType, report); err != nil {
				t.Fatalf("AttestLayout(verification): %v", err)
			}

			out := f.mustVerify(t, "verify", "--local-image", "--key", f.pub(), "--insecure-ignore-tlog=true", dir)
			idxJSON, _ := os.ReadFile(filepath.Join(dir, "index.json"))
			t.Logf("index.json:\n%s\ncosign verify --local-image printed:\n%s", idxJSON, out)
			if strings.Count(out, d.String()) != 1 {
				t.Errorf("cosign verify --local-image: want one signature for %s, got:\n%s", d, out)
			}
			f.mustFail(t, "", "verify", "--local-image", "--key", f.otherPub, "--insecure-ignore-tlog=true", dir)
			checkAttestations(t, f, dir, d, "--local-image")

			// The layout stays a plain OCI layout that ggcr reads.
			p, err := layout.FromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			ii, _ := p.ImageIndex()
			im, _ := ii.IndexManifest()
			if len(im.Manifests) != 3 {
				t.Errorf("index.json has %d entries, want subject, sigs, atts", len(im.Manifests))
			}

			// Re-writing the layout replaces it, signatures and all.
			if _, err := sign.WriteSignedLayout(dir, tc.subject); err != nil {
				t.Fatalf("WriteSignedLayout again: %v", err)
			}
			f.mustFail(t, "", "verify", "--local-image", "--key", f.pub(), "--insecure-ignore-tlog=true", dir)
		})
	}

	t.Run("plain single-image layout", func(t *testing.T) {
		// A layout with one image that nobody marked (ggcr's layout.Write)
		// is signed in place.
		img := randomImage(t)
		dir := filepath.Join(root, "plain")
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "static"})); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		if err := s.SignLayout(ctx, dir, d); err != nil {
			t.Fatalf("SignLayout: %v", err)
		}
		f.mustVerify(t, "verify", "--local-image", "--key", f.pub(), "--insecure-ignore-tlog=true", dir)

		other, _ := randomImage(t).Digest()
		err = s.SignLayout(ctx, dir, other)
		var se *sign.Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "not "+other.String()) {
			t.Errorf("SignLayout of another digest: %v", err)
		}
	})

	t.Run("multi-target layout is refused", func(t *testing.T) {
		dir := filepath.Join(root, "multi")
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		a, b := randomImage(t), randomIndex(t)
		if err := p.AppendImage(a); err != nil {
			t.Fatal(err)
		}
		if err := p.AppendIndex(b); err != nil {
			t.Fatal(err)
		}
		d, _ := a.Digest()
		err = s.SignLayout(ctx, dir, d)
		var se *sign.Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "exactly one per layout") {
			t.Errorf("SignLayout on a two-image layout: %v", err)
		}
		missing, _ := randomImage(t).Digest()
		if err := s.SignLayout(ctx, dir, missing); err == nil || !strings.Contains(err.Error(), "not listed") {
			t.Errorf("SignLayout of a digest not in the layout: %v", err)
		}
		if err := s.SignLayout(ctx, filepath.Join(root, "nope"), d); !errors.As(err, &se) {
			t.Errorf("SignLayout of a missing directory: %v", err)
		}
	})

	t.Run("refuses to replace a non-layout directory", func(t *testing.T) {
		dir := filepath.Join(root, "notalayout")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644)
		if _, err := sign.WriteSignedLayout(dir, randomImage(t)); err == nil {
			t.Error("WriteSignedLayout replaced a directory that is not a layout")
		}
		if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
			t.Error(err)
		}
	})
}

// TestErrors checks that every failure is a *sign.Error with a message
// that says what is wrong, and that the password never shows.
func TestErrors(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	wrong := "wrong-" + password
	pass := func(p string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(p), nil } }
	corrupt := filepath.Join(t.TempDir(), "corrupt.key")
	os.WriteFile(corrupt, []byte("-----BEGIN NOT A KEY-----\nAAAA\n-----END NOT A KEY-----\n"), 0o600)
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	os.WriteFile(garbage, []byte("this is not PEM at all"), 0o600)
	t.Setenv("KILN_TEST_EMPTY_KEY", "")

	check := func(t *testing.T, err error, want string) {
		t.Helper()
		var se *sign.Error
		if !errors.As(err, &se) {
			t.Fatalf("error %v (%T) is not a *sign.Error", err, err)
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error %q contains the password", err)
		}
	}

	cases := []struct {
		name string
		o    sign.Options
		want string
	}{
		{"wrong password", sign.Options{Key: f.key(), Password: pass(wrong)}, "wrong password"},
		{"missing key file", sign.Options{Key: filepath.Join(t.TempDir(), "cosign.key"), Password: pass(password)}, "no such file"},
		{"corrupt key", sign.Options{Key: corrupt, Password: pass(password)}, "not a cosign private key"},
		{"garbage key", sign.Options{Key: garbage, Password: pass(password)}, "not a cosign private key"},
		{"empty env key", sign.Options{Key: "env://KILN_TEST_EMPTY_KEY", Password: pass(password)}, "not a cosign private key"},
		{"unset env key", sign.Options{Key: "env://KILN_TEST_NO_SUCH_VAR", Password: pass(password)}, "KILN_TEST_NO_SUCH_VAR not found"},
		{"password func fails", sign.Options{Key: f.key(), Password: func() ([]byte, error) { return nil, errors.New("vault sealed") }}, "vault sealed"},
		{"no key", sign.Options{}, "no key"},
		{"key and keyless", sign.Options{Key: f.key(), Keyless: true}, "not both"},
		{"keyless with a bad token", sign.Options{Keyless: true, IDToken: "not-a-jwt"}, "OIDC identity token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sign.New(ctx, tc.o)
			if s != nil {
				t.Fatal("New returned a Signer with an error")
			}
			check(t, err, tc.want)
		})
	}

	t.Run("no password anywhere", func(t *testing.T) {
		t.Setenv("COSIGN_PASSWORD", "") // restores the variable afterwards
		os.Unsetenv("COSIGN_PASSWORD")
		_, err := sign.New(ctx, sign.Options{Key: f.key()})
		check(t, err, "set COSIGN_PASSWORD")
	})

	s := f.signer(t, sign.Options{})
	t.Run("unreachable registry", func(t *testing.T) {
		ref, _ := name.NewDigest("127.0.0.1:1/kiln/app@sha256:" + strings.Repeat("0", 64))
		check(t, s.SignRemote(ctx, ref), "127.0.0.1:1")
		check(t, s.AttestRemote(ctx, ref, "spdxjson", []byte(`{}`)), "connection refused")
	})
	t.Run("digest not pushed", func(t *testing.T) {
		ref, _ := name.NewDigest(f.registry + "/kiln/absent@sha256:" + strings.Repeat("1", 64))
		check(t, s.SignRemote(ctx, ref), "push it before signing")
	})
	t.Run("unreachable transparency log", func(t *testing.T) {
		ts := f.signer(t, sign.Options{TLog: true, RekorURL: "http://127.0.0.1:1"})
		ref := f.push(t, "kiln/tlog", randomImage(t))
		check(t, ts.SignRemote(ctx, ref), "transparency log")
	})
	t.Run("KMS URI goes to the KMS", func(t *testing.T) {
		// cosign's hashivault provider, pointed at nothing: the key
		// reference must reach it (not be read as a file), and New must
		// fail there, before anything is pushed.
		t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
		t.Setenv("VAULT_TOKEN", "kiln-test-token")
		_, err := sign.New(ctx, sign.Options{Key: "hashivault://kiln-test-key"})
		check(t, err, "127.0.0.1:1/v1/transit/keys/kiln-test-key")
	})
	t.Run("bad predicate", func(t *testing.T) {
		ref := f.push(t, "kiln/badpred", randomImage(t))
		check(t, s.AttestRemote(ctx, ref, sign.VerificationPredicateType, []byte("not json")), "invalid JSON")
	})
}
