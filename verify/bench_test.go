package verify

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kilnbuild/kiln/targets"
)

// BenchmarkVerifyStatic20MB is static verification (no run.*) of a ~20 MB
// image: a real Go binary with the usual files around it. Issue #7's target
// is under 100 ms per image.
func BenchmarkVerifyStatic20MB(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../examples/hello"
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the benchmark binary: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{
		"etc/passwd":                        []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
		"etc/nsswitch.conf":                 []byte("hosts: files dns\n"),
		"etc/ssl/certs/ca-certificates.crt": bytes.Repeat([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 150),
		"usr/share/zoneinfo/UTC":            []byte("TZif2 fake"),
		"usr/share/doc/filler.bin":          randomBytes(20<<20 - len(data)),
	}
	base := layerOf(b, files)
	app := layerOf(b, map[string][]byte{"app": data})
	img, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		b.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint, cf.Config.User = []string{"/app"}, "65532"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		b.Fatal(err)
	}
	in := Input{Image: img, Ref: "bench", Platform: targets.Platform{OS: "linux", Arch: "amd64"}, Libc: targets.LibcNone,
		Policy: targets.Policy{Resolver: "go", Require: []string{"certs", "tzdata", "nonroot"}}}
	b.SetBytes(20 << 20)
	b.ResetTimer()
	for b.Loop() {
		rep, err := Image(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Passed {
			b.Fatalf("the benchmark image should pass: %+v", rep.Failures())
		}
	}
}

func layerOf(b *testing.B, files map[string][]byte) v1.Layer {
	var entries []tarEnt
	for name, data := range files {
		entries = append(entries, tarExe(name, string(data)))
	}
	// Compressed, as layers come from a layout or a registry: verification
	// pays for the gunzip.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBytes(b, entries...))
	zw.Close()
	return rawLayer(b, gz.Bytes())
}

// randomBytes is incompressible filler, so the layer is really ~20 MB.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}
