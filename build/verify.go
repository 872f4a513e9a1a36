package build

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// VerifyError is a verification that failed: the image would not start or
// not resolve names as required. The CLI maps it to exit code 1.
type VerifyError struct {
	Failures []string // "static linux/amd64: link.interp: PT_INTERP … is not in the image"
}

func (e *VerifyError) Error() string {
	return "verification failed:\n" + strings.Join(e.Failures, "\n")
}

// VerifyOptions say what to check in an image kiln did not necessarily
// build (kiln verify).
type VerifyOptions struct {
	Platforms []targets.Platform // empty: every platform the image has
	Binary    string             // "" is the entrypoint
	Policy    targets.Policy
	Keychain  authn.Keychain
	Runner    *verify.Runner
}

// VerifyImage loads an image by reference (a registry reference, or
// oci:<layout>[:<name>][@sha256:…]) and verifies each of its platforms. The
// libc expectation is inferred from each binary.
func VerifyImage(ctx context.Context, ref string, opts VerifyOptions) ([]*verify.Report, error) {
	r, err := targets.ParseBase(ref)
	if err != nil || r.Kind == targets.BaseScratch {
		return nil, &targets.ConfigError{Key: "IMAGE", Problem: fmt.Sprintf("%q is not an image reference", ref),
			Fix: "give a registry reference (host/repo:tag or @sha256:…) or oci:<layout>[:<name>][@sha256:…]"}
	}
	if r.Kind == targets.BaseLayout && r.Digest == "" && r.RefName == "" {
		if r.RefName, err = onlyLayoutEntry(r.Path); err != nil {
			return nil, err
		}
	}
	b, err := LoadBase(ctx, r, opts.Keychain)
	if err != nil {
		return nil, atKey(err, "", 0, "IMAGE", "check the reference: a registry image, or oci:<layout>[:<name>][@sha256:…] that the layout holds")
	}
	pls := opts.Platforms
	if len(pls) == 0 {
		if pls, err = b.Platforms(); err != nil {
			return nil, &RegistryError{Op: "reading", Ref: ref, Err: err}
		}
	}
	var reports []*verify.Report
	for _, pl := range pls {
		img, _, err := b.PlatformImage(pl)
		if err != nil {
			return nil, atKey(err, "", 0, "--platform", "ask for a platform the image has, or leave --platform out to check them all")
		}
		rep, err := verify.Image(ctx, verify.Input{Image: img, Ref: ref, Platform: pl, Binary: opts.Binary, Policy: opts.Policy, Runner: opts.Runner})
		if err != nil {
			return nil, &RegistryError{Op: "reading the files of", Ref: ref + " (" + pl.String() + ")", Err: err}
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// Platforms lists the platforms a base image has.
func (b *Base) Platforms() ([]targets.Platform, error) {
	if b.image != nil {
		cf, err := b.image.ConfigFile()
		if err != nil {
			return nil, err
		}
		return []targets.Platform{{OS: cf.OS, Arch: cf.Architecture, Variant: cf.Variant}}, nil
	}
	if b.index == nil {
		return nil, fmt.Errorf("scratch has no platforms")
	}
	m, err := b.index.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []targets.Platform
	for _, d := range m.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() || d.Platform.OS == "unknown" {
			continue // attestation manifests and the like
		}
		out = append(out, targets.Platform{OS: d.Platform.OS, Arch: d.Platform.Architecture, Variant: d.Platform.Variant})
	}
	return out, nil
}
