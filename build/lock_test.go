package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kilnbuild/kiln/targets"
)

func TestLockPinsAndKeepsTheRestOfTheFile(t *testing.T) {
	f := newFixture(t)
	ref, _ := name.ParseReference(f.registry + "/bases/alpine:3.19")
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	regDigest, _ := img.Digest()
	layoutDigest := f.baseDigest(t)
	old := "sha256:" + strings.Repeat("a", 64)

	src := "version: 1 # schema\n" +
		"targets:\n" +
		"  # the distroless-like one\n" +
		"  static:\n" +
		"    libc: none\n" +
		"    base: oci:bases:base   # stand-in\n" +
		"  alpine:\n" +
		"    base: \"" + f.registry + "/bases/alpine:3.19@" + old + "\"\n" +
		"    libc: musl\n" +
		"  bare: {libc: none, base: scratch}\n" +
		"  pinned:\n" +
		"    base: '" + f.registry + "/bases/alpine@" + old + "'\n"
	file := filepath.Join(f.dir, "kiln.yaml")
	out, pins, err := targets.Lock(file, []byte(src), ResolveBase(context.Background(), nil))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(src, "oci:bases:base ", "oci:bases:base@"+layoutDigest+" ", 1)
	want = strings.Replace(want, "alpine:3.19@"+old, "alpine:3.19@"+regDigest.String(), 1)
	if string(out) != want {
		t.Errorf("locked file:\n%s\nwant:\n%s", out, want)
	}
	if len(pins) != 2 || !pins[0].Stale() || !pins[1].Stale() || pins[0].Key != "targets.static.base" || pins[0].Line != 6 {
		t.Errorf("pins = %+v", pins)
	}

	// Locking the locked file changes nothing; moving the tag makes it stale.
	again, pins, err := targets.Lock(file, out, ResolveBase(context.Background(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(out) || pins[0].Stale() || pins[1].Stale() {
		t.Errorf("second lock is not a no-op: %+v", pins)
	}
	moved, _ := random.Image(256, 1)
	if err := remote.Write(ref, moved); err != nil {
		t.Fatal(err)
	}
	if _, pins, err = targets.Lock(file, out, ResolveBase(context.Background(), nil)); err != nil {
		t.Fatal(err)
	}
	if pins[0].Stale() || !pins[1].Stale() {
		t.Errorf("after the tag moved, want only the alpine pin stale: %+v", pins)
	}
}

func TestLockErrors(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.dir, "kiln.yaml")
	tests := []struct{ src, key, want string }{
		{"targets:\n  a:\n    base: oci:bases:nope\n", "targets.a.base", `has no entry named "nope"`},
		{"targets:\n  a:\n    base: oci:bases\n", "targets.a.base", "names neither a digest nor a layout entry"},
		{"targets:\n  a:\n    base: |\n      oci:bases:base\n", "targets.a.base", "cannot rewrite the value"},
	}
	for _, tt := range tests {
		_, _, err := targets.Lock(file, []byte(tt.src), ResolveBase(context.Background(), nil))
		var ce *targets.ConfigError
		if !errors.As(err, &ce) || ce.Key != tt.key || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want a config error on %s saying %q", tt.src, err, tt.key, tt.want)
		}
	}
	if _, err := os.Stat(file); err == nil {
		t.Error("Lock wrote the file; only the CLI writes")
	}
}
