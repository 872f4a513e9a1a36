// Package anyimage verifies and signs images kiln did not necessarily
// build, named by a reference: what `kiln verify IMAGE` and `kiln sign
// IMAGE@DIGEST` do. A release verifies and signs its own images inside its
// pipeline (package build); this package is for an image that already
// exists, in a registry or an OCI layout.
//
// It loads images with build's base loading (the same registry options,
// the same layout rules) and checks them with verify; it does not print,
// and its errors are its own: *RefError for a reference that names nothing
// usable, *ReadError when the image cannot be read. What the signer reports
// is a *sign.Error.
package anyimage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kilnbuild/kiln/build"
	"github.com/kilnbuild/kiln/internal/explain"
	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// RefError is a reference that is not one, or that names nothing usable.
// The CLI maps it to exit code 2.
type RefError struct {
	Ref     string
	Problem string
	Fix     string
}

func (e *RefError) Error() string { return explain.Message(e.Ref, e.Problem, e.Fix) }

// ReadError is an image that could not be read: a registry or a layout
// failed, or its layers could not be flattened. The CLI maps it to exit
// code 4.
type ReadError struct {
	Ref string
	Err error
}

func (e *ReadError) Error() string { return "reading " + e.Ref + ": " + e.Err.Error() }

func (e *ReadError) Unwrap() error { return e.Err }

// VerifyOptions say what to check in an image.
type VerifyOptions struct {
	Platforms []targets.Platform // empty: every platform the image has
	Binary    string             // "" is the entrypoint
	Policy    targets.Policy
	Keychain  authn.Keychain
	Runner    *verify.Runner
}

// Verify loads an image by reference (a registry reference, or
// oci:<layout>[:<name>][@sha256:…]) and verifies each of its platforms. The
// libc expectation is inferred from each binary.
func Verify(ctx context.Context, ref string, opts VerifyOptions) ([]*verify.Report, error) {
	r, err := targets.ParseBase(ref)
	if err != nil || r.Kind == targets.BaseScratch {
		return nil, &RefError{Ref: ref, Problem: "not an image reference",
			Fix: "give a registry reference (host/repo:tag or @sha256:…) or oci:<layout>[:<name>][@sha256:…]"}
	}
	if r.Kind == targets.BaseLayout && r.Digest == "" && r.RefName == "" {
		if r.RefName, err = onlyLayoutEntry(r.Path); err != nil {
			return nil, err
		}
	}
	b, err := build.LoadBase(ctx, r, opts.Keychain)
	if err != nil {
		return nil, refOrRead(ref, err, "check the reference: a registry image, or oci:<layout>[:<name>][@sha256:…] that the layout holds")
	}
	pls := opts.Platforms
	if len(pls) == 0 {
		if pls, err = b.Platforms(); err != nil {
			return nil, &ReadError{Ref: ref, Err: err}
		}
	}
	var reports []*verify.Report
	for _, pl := range pls {
		img, _, err := b.PlatformImage(pl)
		if err != nil {
			return nil, refOrRead(ref, err, "ask only for platforms the image has, or check them all")
		}
		rep, err := verify.Image(ctx, verify.Input{Image: img, Ref: ref, Platform: pl, Binary: opts.Binary, Policy: opts.Policy, Runner: opts.Runner})
		if err != nil {
			return nil, &ReadError{Ref: ref + " (" + pl.String() + ")", Err: err}
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// refOrRead says what a loading error means for an image given by
// reference: a reference that names nothing there, with fix, or a failure
// to read it.
func refOrRead(ref string, err error, fix string) error {
	var me *build.MissingError
	if errors.As(err, &me) {
		return &RefError{Ref: ref, Problem: strings.TrimPrefix(me.Problem, ref+": "), Fix: fix}
	}
	return &ReadError{Ref: ref, Err: err}
}

// onlyLayoutEntry names the single top-level entry of a layout, for
// `kiln verify oci:<layout>` without a name or digest.
func onlyLayoutEntry(dir string) (string, error) {
	ref := "oci:" + dir
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return "", &RefError{Ref: ref, Problem: fmt.Sprintf("%s is not an OCI image layout: %v", dir, err)}
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return "", &RefError{Ref: ref, Problem: fmt.Sprintf("reading %s/index.json: %v", dir, err)}
	}
	var names []string
	for _, d := range m.Manifests {
		names = append(names, d.Annotations[build.AnnotationRefName])
	}
	if len(names) == 1 && names[0] != "" {
		return names[0], nil
	}
	return "", &RefError{Ref: ref, Problem: fmt.Sprintf("the layout %s has %d entries (%s)", dir, len(names), strings.Join(names, ", ")),
		Fix: "name one: oci:" + dir + ":<name>, or give its digest with @sha256:…"}
}

// Sign signs one image or index already in a registry, by digest. A tag is
// refused: what it points to can change between reading and signing.
func Sign(ctx context.Context, ref string, cfg targets.SignConfig, keychain authn.Keychain) (v1.Hash, error) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return v1.Hash{}, &RefError{Ref: ref, Problem: fmt.Sprintf("not a reference by digest (%v)", err),
			Fix: "sign REPO@sha256:…; signing a tag is a race (`crane digest REPO:TAG` gives the digest)"}
	}
	s, err := sign.New(ctx, sign.Options{Key: cfg.Key, TLog: cfg.TLog, Keyless: cfg.Keyless, RemoteOpts: build.RegistryOptions(keychain, 0)})
	if err != nil {
		return v1.Hash{}, err
	}
	if err := s.SignRemote(ctx, d); err != nil {
		return v1.Hash{}, err
	}
	return v1.NewHash(d.DigestStr())
}
