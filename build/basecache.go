package build

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
)

// A base pinned by digest cannot change, so the manifests and configs a
// release read are kept in the cache (content-addressed, checked against
// their digests when read) and the next release needs no round trip to
// know the base. Its layers stay in the registry until something reads them:
// a push to a repository that lacks them (mounted from the base's
// repository, as for a fetched base) or the flattening of its files.

// cachedBase returns the base a pinned registry reference names from c, or
// false when its manifest is not there.
func cachedBase(c *kilncache.Cache, ref name.Digest, opts []remote.Option) (*Base, bool) {
	raw, ok := c.Blob(ref.DigestStr())
	if !ok {
		return nil, false
	}
	d, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return nil, false
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return nil, false
	}
	b := &Base{Digest: d}
	if probe.MediaType.IsIndex() || (probe.MediaType == "" && probe.Manifests != nil) {
		m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, false
		}
		b.index = &cachedIndex{raw: raw, m: m, digest: d, c: c, repo: ref.Context(), opts: opts}
		return b, true
	}
	img, err := cachedImage(c, ref.Context(), raw, opts)
	if err != nil {
		return nil, false
	}
	b.image = img
	return b, true
}

// keepBase stores what the next release needs to know b and its platform
// image img without the registry. Only pinned registry bases are kept.
func keepBase(c *kilncache.Cache, b *Base, img v1.Image) {
	if c == nil || b.Digest == (v1.Hash{}) || b.Ref.Digest == "" {
		return
	}
	var top []byte
	if b.index != nil {
		top, _ = b.index.RawManifest()
	} else {
		top, _ = b.image.RawManifest()
	}
	m, err := img.RawManifest()
	if err != nil || top == nil {
		return
	}
	cf, err := img.RawConfigFile()
	if err != nil {
		return
	}
	// Children first: a top-level manifest in the cache promises them.
	c.PutBlob(cf)
	c.PutBlob(m)
	c.PutBlob(top)
}

// cachedImage is the image whose manifest is raw, with its config from c
// (or an error when it is not there).
func cachedImage(c *kilncache.Cache, repo name.Repository, raw []byte, opts []remote.Option) (v1.Image, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	cf, ok := c.Blob(m.Config.Digest.String())
	if !ok {
		return nil, fmt.Errorf("config %s is not cached", m.Config.Digest)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(cf, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config lists %d diff ids for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	return partial.CompressedToImage(&cachedCore{raw: raw, m: m, config: cf, diffIDs: cfg.RootFS.DiffIDs, repo: repo, opts: opts})
}

type cachedCore struct {
	raw, config []byte
	m           *v1.Manifest
	diffIDs     []v1.Hash
	repo        name.Repository
	opts        []remote.Option
}

func (i *cachedCore) RawManifest() ([]byte, error)   { return i.raw, nil }
func (i *cachedCore) RawConfigFile() ([]byte, error) { return i.config, nil }
func (i *cachedCore) MediaType() (types.MediaType, error) {
	if i.m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return i.m.MediaType, nil
}

func (i *cachedCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for n, desc := range i.m.Layers {
		if desc.Digest == h {
			ref := i.repo.Digest(h.String())
			l := &lazyLayer{desc: desc, diffID: i.diffIDs[n], ref: ref, opts: i.opts}
			return &remote.MountableLayer{Layer: l, Reference: ref}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in the base's manifest", h)
}

// lazyLayer is a base layer known by its descriptor, fetched from the
// registry only when its bytes are read.
type lazyLayer struct {
	desc   v1.Descriptor
	diffID v1.Hash
	ref    name.Digest
	opts   []remote.Option

	once sync.Once
	l    v1.Layer
	err  error
}

func (l *lazyLayer) remote() (v1.Layer, error) {
	l.once.Do(func() { l.l, l.err = remote.Layer(l.ref, l.opts...) })
	return l.l, l.err
}

func (l *lazyLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *lazyLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *lazyLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *lazyLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *lazyLayer) Compressed() (io.ReadCloser, error) {
	r, err := l.remote()
	if err != nil {
		return nil, err
	}
	return r.Compressed()
}
func (l *lazyLayer) Uncompressed() (io.ReadCloser, error) {
	r, err := l.remote()
	if err != nil {
		return nil, err
	}
	return r.Uncompressed()
}

// cachedIndex is a base index whose manifest came from the cache; its
// platform images come from the cache too, or from the registry.
type cachedIndex struct {
	raw    []byte
	m      *v1.IndexManifest
	digest v1.Hash
	c      *kilncache.Cache
	repo   name.Repository
	opts   []remote.Option
}

func (x *cachedIndex) MediaType() (types.MediaType, error) {
	if x.m.MediaType == "" {
		return types.OCIImageIndex, nil
	}
	return x.m.MediaType, nil
}
func (x *cachedIndex) Digest() (v1.Hash, error)                  { return x.digest, nil }
func (x *cachedIndex) Size() (int64, error)                      { return int64(len(x.raw)), nil }
func (x *cachedIndex) IndexManifest() (*v1.IndexManifest, error) { return x.m.DeepCopy(), nil }
func (x *cachedIndex) RawManifest() ([]byte, error)              { return x.raw, nil }

func (x *cachedIndex) Image(h v1.Hash) (v1.Image, error) {
	if raw, ok := x.c.Blob(h.String()); ok {
		if img, err := cachedImage(x.c, x.repo, raw, x.opts); err == nil {
			return img, nil
		}
	}
	return remote.Image(x.repo.Digest(h.String()), x.opts...)
}

func (x *cachedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return remote.Index(x.repo.Digest(h.String()), x.opts...)
}
