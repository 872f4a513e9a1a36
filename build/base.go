package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
)

// Base is a resolved base image: what its reference names (one image or a
// multi-platform index) and the digest of that.
type Base struct {
	Ref    targets.BaseRef
	Digest v1.Hash // zero for scratch

	index v1.ImageIndex // set when the reference names an index
	image v1.Image      // set when it names a single image
}

// LoadBase resolves a base reference. A pinned reference is fetched by its
// digest; an unpinned one (only kiln lock asks for those) by tag or layout
// name. Registry I/O failures are *RegistryError; a layout or digest that is
// not there is a *MissingError, since the reference is what must change.
func LoadBase(ctx context.Context, ref targets.BaseRef, keychain authn.Keychain) (*Base, error) {
	return loadBase(ctx, ref, nil, RegistryOptions(keychain, 0)...)
}

// loadBase is LoadBase with kiln's cache (see basecache.go) and the
// registry options to use (credentials, or a puller shared by several
// bases).
func loadBase(ctx context.Context, ref targets.BaseRef, c *kilncache.Cache, opts ...remote.Option) (*Base, error) {
	b := &Base{Ref: ref}
	switch ref.Kind {
	case targets.BaseScratch:
		return b, nil
	case targets.BaseLayout:
		return b, b.loadLayout()
	}
	opts = append(opts, remote.WithContext(ctx))
	var r name.Reference = ref.Repo.Tag(cmp.Or(ref.Tag, "latest"))
	if ref.Digest != "" {
		pinned := ref.Repo.Digest(ref.Digest)
		if cached, ok := cachedBase(c, pinned, opts); ok {
			cached.Ref = ref
			return cached, nil
		}
		r = pinned
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, &RegistryError{Op: "fetching base image", Ref: r.String(), Err: err}
	}
	b.Digest = desc.Digest
	if desc.MediaType.IsIndex() {
		b.index, err = desc.ImageIndex()
	} else {
		b.image, err = desc.Image()
	}
	if err != nil {
		return nil, &RegistryError{Op: "reading base image", Ref: r.String(), Err: err}
	}
	return b, nil
}

func (b *Base) loadLayout() error {
	ref := b.Ref
	missing := func(fix, format string, args ...any) error {
		return &MissingError{Problem: ref.Raw + ": " + fmt.Sprintf(format, args...), Fix: fix}
	}
	if _, err := os.Stat(ref.Path); err != nil {
		return missing("create the layout (for the stand-in bases: make bases) or correct the path", "no OCI image layout at %s", ref.Path)
	}
	p, err := layout.FromPath(ref.Path)
	if err != nil {
		return missing("", "%s is not an OCI image layout: %v", ref.Path, err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return missing("", "reading %s/index.json: %v", ref.Path, err)
	}
	parent, desc, err := findInLayout(root, func(d v1.Descriptor) bool {
		if ref.Digest != "" {
			return d.Digest.String() == ref.Digest
		}
		return d.Annotations["org.opencontainers.image.ref.name"] == ref.RefName
	}, 0)
	if err != nil {
		return missing("", "reading the layout: %v", err)
	}
	if desc == nil {
		what := "digest " + ref.Digest
		if ref.Digest == "" {
			what = fmt.Sprintf("entry named %q", ref.RefName)
		}
		return missing("run `kiln lock` to pin what the layout holds now, or rebuild the layout", "the layout at %s has no %s", ref.Path, what)
	}
	b.Digest = desc.Digest
	if desc.MediaType.IsIndex() {
		b.index, err = parent.ImageIndex(desc.Digest)
	} else {
		b.image, err = parent.Image(desc.Digest)
	}
	if err != nil {
		return missing("", "reading %s: %v", desc.Digest, err)
	}
	return nil
}

// findInLayout searches an index and the indexes it nests for a descriptor,
// returning it with the index that lists it. Depth is bounded: a layout is
// untrusted input and may nest without end.
func findInLayout(ii v1.ImageIndex, match func(v1.Descriptor) bool, depth int) (v1.ImageIndex, *v1.Descriptor, error) {
	if depth > 4 {
		return nil, nil, errors.New("indexes nested more than 4 deep")
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	for i := range m.Manifests {
		if match(m.Manifests[i]) {
			return ii, &m.Manifests[i], nil
		}
	}
	for _, d := range m.Manifests {
		if !d.MediaType.IsIndex() {
			continue
		}
		child, err := ii.ImageIndex(d.Digest)
		if err != nil {
			return nil, nil, err
		}
		if parent, found, err := findInLayout(child, match, depth+1); found != nil || err != nil {
			return parent, found, err
		}
	}
	return nil, nil, nil
}

// PlatformImage returns the base image for one platform, with that
// platform's manifest digest (zero for scratch).
func (b *Base) PlatformImage(pl targets.Platform) (v1.Image, v1.Hash, error) {
	switch {
	case b.Ref.Kind == targets.BaseScratch:
		img, err := scratch(pl)
		return img, v1.Hash{}, err
	case b.image != nil:
		cf, err := b.image.ConfigFile()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("reading the config of base %s: %w", b.Ref.Raw, err)
		}
		if !platformMatches(cf.Platform(), pl) {
			return nil, v1.Hash{}, b.noPlatform(pl, []string{platformString(cf.Platform())})
		}
		return b.image, b.Digest, nil
	}
	m, err := b.index.IndexManifest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading the index of base %s: %w", b.Ref.Raw, err)
	}
	var have []string
	for _, d := range m.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		if platformMatches(d.Platform, pl) {
			img, err := b.index.Image(d.Digest)
			if err != nil {
				return nil, v1.Hash{}, fmt.Errorf("reading base %s for %s: %w", b.Ref.Raw, pl, err)
			}
			return img, d.Digest, nil
		}
		have = append(have, platformString(d.Platform))
	}
	return nil, v1.Hash{}, b.noPlatform(pl, have)
}

func (b *Base) noPlatform(pl targets.Platform, have []string) error {
	return &MissingError{Problem: fmt.Sprintf("%s has no %s image (it has: %s)", b.Ref.Raw, pl, strings.Join(have, ", ")),
		Fix: "choose an image built for " + pl.String()}
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

// ResolveBase returns what kiln lock resolves a base reference with: the
// digest it names now, in a registry (credentials from keychain) or a
// layout.
func ResolveBase(ctx context.Context, keychain authn.Keychain) func(targets.BaseRef) (string, error) {
	return func(ref targets.BaseRef) (string, error) {
		b, err := LoadBase(ctx, ref, keychain)
		if err != nil {
			return "", err
		}
		return b.Digest.String(), nil
	}
}

func platformMatches(p *v1.Platform, want targets.Platform) bool {
	if p == nil || p.OS != want.OS || p.Architecture != want.Arch {
		return false
	}
	// arm64 images often leave the variant out; v8 is the only one.
	if want.Arch == "arm64" {
		return p.Variant == "" || p.Variant == "v8" || p.Variant == want.Variant
	}
	return p.Variant == want.Variant
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// scratch is an empty OCI image whose config names the platform.
func scratch(pl targets.Platform) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = pl.OS, pl.Arch, pl.Variant
	cf.RootFS.Type = "layers"
	return mutate.ConfigFile(img, cf)
}
