package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
)

// OCI annotation keys kiln records.
const (
	AnnotationBaseName = "org.opencontainers.image.base.name"
	AnnotationBaseDig  = "org.opencontainers.image.base.digest"
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationSource   = "org.opencontainers.image.source"
	AnnotationRevision = "org.opencontainers.image.revision"
	AnnotationRefName  = "org.opencontainers.image.ref.name"
)

// ImageSpec is everything about the new image that is not the base or the
// binary: the config fields and the annotations of SPEC §1.
type ImageSpec struct {
	Entrypoint string
	User       string
	Workdir    string
	Env        []string
	Labels     map[string]string
	Created    time.Time // SOURCE_DATE_EPOCH, or the Unix epoch
	Source     string    // org.opencontainers.image.source, when known
	Revision   string    // org.opencontainers.image.revision, when known
}

// binaryLayer returns a layer holding only the binary at entrypoint, with
// its parent directories. Everything that could vary between runs is fixed:
// entry order, uid/gid 0, mode 0555 (dirs 0755), mtime, no user names. The
// compressed form is kept in c by the uncompressed digest, so an unchanged
// binary is not compressed again on the next release.
func binaryLayer(c *kilncache.Cache, binary []byte, entrypoint string, mtime time.Time, mt types.MediaType) (*memLayer, error) {
	raw, err := binaryTar(binary, entrypoint, mtime)
	if err != nil {
		return nil, err
	}
	l := &memLayer{raw: raw, mediaType: mt}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: hexSHA256(l.raw)}
	cached := c.File(layersKind, l.diffID.Hex+".tar.gz")
	if data, err := os.ReadFile(cached); err == nil && verifyGzipOf(data, l.raw) {
		l.compressed = data
	} else {
		// klauspost's gzip: several times faster than compress/gzip at the
		// same level, and as deterministic.
		var gz bytes.Buffer
		zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(l.raw); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		l.compressed = gz.Bytes()
		c.PutFile(layersKind, l.diffID.Hex+".tar.gz", l.compressed)
	}
	// Both forms stay in memory with their digests, so neither publishing
	// nor verification compresses or decompresses this layer again.
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hexSHA256(l.compressed)}
	return l, nil
}

// layersKind is the cache directory of compressed binary layers.
const layersKind = "layers"

// binaryTar is the uncompressed layer of binaryLayer.
func binaryTar(binary []byte, entrypoint string, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(binary) + 8<<10)
	tw := tar.NewWriter(&buf)
	rel := strings.TrimPrefix(path.Clean(entrypoint), "/")
	var dirs []string
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs) // parents before children
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o555, Size: int64(len(binary)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// binaryLayerFile is binaryLayer for the binary at bin, skipping the work
// when an earlier run layered the same binary: the go command stamps every
// binary with a build ID whose last part is a hash of its content (it is
// how go build decides the binary is up to date), so with the same build
// ID and size, and the compressed layer still cached, the recorded digests
// are used and nothing is read, hashed or compressed until something needs
// the bytes. A warm release pays for reading an ELF note.
func binaryLayerFile(c *kilncache.Cache, bin, entrypoint string, mtime time.Time, mt types.MediaType) (v1.Layer, error) {
	fi, err := os.Stat(bin)
	if err != nil {
		return nil, fmt.Errorf("reading the built binary: %w", err)
	}
	key := ""
	if id := kilncache.GoBuildID(bin); linkerBuildID(id) {
		key = c.Key("binary-layer/v1", id, fi.Size(), entrypoint, mtime, mt)
	}
	var rec layerRecord
	if key != "" && c.Get("binary-layer", key, &rec) {
		gz := c.File(layersKind, rec.DiffID.Hex+".tar.gz")
		if gi, err := os.Stat(gz); err == nil && gi.Size() == rec.Size {
			return &fileLayer{bin: bin, gz: gz, entrypoint: entrypoint, mtime: mtime, mediaType: mt, rec: rec}, nil
		}
	}
	data, err := readBinary(bin)
	if err != nil {
		return nil, err
	}
	l, err := binaryLayer(c, data, entrypoint, mtime, mt)
	if err != nil {
		return nil, err
	}
	if key != "" {
		c.Put("binary-layer", key, layerRecord{Digest: l.digest, DiffID: l.diffID, Size: int64(len(l.compressed))})
	}
	return l, nil
}

// linkerBuildID reports whether id has the form the go command gives an
// executable (four hashes, the last of the binary's content). A build ID
// set by hand (-ldflags=-buildid=…) names no content, and is not trusted.
func linkerBuildID(id string) bool {
	parts := strings.Split(id, "/")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) != 20 || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}

// layerRecord is what binaryLayerFile keeps of a layer.
type layerRecord struct {
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diff_id"`
	Size   int64   `json:"size"`
}

// fileLayer is a binary layer known by its recorded digests: the
// compressed form is read from the layer cache and checked against its
// digest as it is read; the tar is made from the binary when asked for.
type fileLayer struct {
	bin, gz, entrypoint string
	mtime               time.Time
	mediaType           types.MediaType
	rec                 layerRecord
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.rec.Digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.rec.DiffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.rec.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.gz)
	if err != nil {
		return nil, err
	}
	return &digestReader{f: f, h: sha256.New(), want: l.rec.Digest.Hex, name: l.gz}, nil
}
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	data, err := readBinary(l.bin)
	if err != nil {
		return nil, err
	}
	raw, err := binaryTar(data, l.entrypoint, l.mtime)
	if err != nil {
		return nil, err
	}
	if d := hexSHA256(raw); d != l.rec.DiffID.Hex {
		return nil, fmt.Errorf("the binary %s changed since it was layered (diff id sha256:%s, recorded %s); run kiln release again", l.bin, d, l.rec.DiffID)
	}
	return io.NopCloser(bytes.NewReader(raw)), nil
}

// digestReader fails the read that reaches EOF when what was read does not
// have the expected sha256: a damaged cache file must not be published.
type digestReader struct {
	f    *os.File
	h    hash.Hash
	want string
	name string
}

func (r *digestReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want {
			return n, fmt.Errorf("%s: content has sha256:%s, want sha256:%s (delete it; kiln rebuilds it)", r.name, got, r.want)
		}
	}
	return n, err
}

func (r *digestReader) Close() error { return r.f.Close() }

// verifyGzipOf checks, cheaply, that a cached file is a gzip stream whose
// trailer matches raw (CRC-32 and length): a truncated or foreign file is
// ignored and rebuilt.
func verifyGzipOf(gz, raw []byte) bool {
	if len(gz) < 18 || gz[0] != 0x1f || gz[1] != 0x8b {
		return false
	}
	trailer := gz[len(gz)-8:]
	crc := uint32(trailer[0]) | uint32(trailer[1])<<8 | uint32(trailer[2])<<16 | uint32(trailer[3])<<24
	size := uint32(trailer[4]) | uint32(trailer[5])<<8 | uint32(trailer[6])<<16 | uint32(trailer[7])<<24
	return crc == crc32.ChecksumIEEE(raw) && size == uint32(len(raw))
}

// memLayer is a layer held in memory in both forms.
type memLayer struct {
	raw, compressed []byte
	digest, diffID  v1.Hash
	mediaType       types.MediaType
}

func (l *memLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) {
	return l.mediaType, nil
}
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// layerMediaType is the media type of a layer added to base: one family
// of media types per manifest.
func layerMediaType(base v1.Image) (types.MediaType, error) {
	baseType, err := base.MediaType()
	if err != nil {
		return "", fmt.Errorf("reading the base's media type: %w", err)
	}
	if baseType == types.DockerManifestSchema2 {
		return types.DockerLayer, nil
	}
	return types.OCILayer, nil
}

// assembleLayer puts the binary layer on the base for one platform and sets
// the config and annotations. baseDigest is the platform manifest of the
// base (zero for scratch).
func assembleLayer(base v1.Image, baseRef targets.BaseRef, baseDigest v1.Hash, layer v1.Layer, spec ImageSpec) (v1.Image, error) {
	created := v1.Time{Time: spec.Created}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "kiln: " + spec.Entrypoint, Comment: "the application binary"},
	})
	if err != nil {
		return nil, fmt.Errorf("appending the binary layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the base config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.Config.Entrypoint = []string{spec.Entrypoint}
	cf.Config.Cmd = nil // a base's CMD (alpine's /bin/sh) would become the binary's arguments
	cf.Config.User = spec.User
	if spec.Workdir != "" {
		cf.Config.WorkingDir = spec.Workdir
	}
	cf.Config.Env = mergeEnv(cf.Config.Env, spec.Env)
	if labels := spec.labels(); len(labels) > 0 {
		merged := map[string]string{}
		for k, v := range cf.Config.Labels {
			merged[k] = v
		}
		for k, v := range labels {
			merged[k] = v
		}
		cf.Config.Labels = merged
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the image config: %w", err)
	}
	ann := spec.annotations(baseRef, baseDigest)
	return mutate.Annotations(img, ann).(v1.Image), nil
}

// Index gathers one target's platform images into an OCI image index.
func Index(images []v1.Image, platforms []targets.Platform, baseRef targets.BaseRef, baseDigest v1.Hash, spec ImageSpec) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, len(images))
	for i, img := range images {
		mt, err := img.MediaType()
		if err != nil {
			return nil, err
		}
		pl := platforms[i]
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: mt,
			Platform:  &v1.Platform{OS: pl.OS, Architecture: pl.Arch, Variant: pl.Variant},
		}}
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, spec.annotations(baseRef, baseDigest)).(v1.ImageIndex), nil
}

// labels are the config labels kiln sets: the user's, and source and
// revision (as in the annotations) for tools that read only labels (podman
// inspect, Renovate). They win over the base's labels of the same name.
func (s ImageSpec) labels() map[string]string {
	labels := map[string]string{}
	if s.Source != "" {
		labels[AnnotationSource] = s.Source
	}
	if s.Revision != "" {
		labels[AnnotationRevision] = s.Revision
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	return labels
}

func (s ImageSpec) annotations(baseRef targets.BaseRef, baseDigest v1.Hash) map[string]string {
	ann := map[string]string{AnnotationCreated: s.Created.UTC().Format(time.RFC3339)}
	if baseRef.Kind != targets.BaseScratch {
		ann[AnnotationBaseName] = baseRef.Name()
		ann[AnnotationBaseDig] = baseDigest.String()
	}
	if s.Source != "" {
		ann[AnnotationSource] = s.Source
	}
	if s.Revision != "" {
		ann[AnnotationRevision] = s.Revision
	}
	return ann
}

// mergeEnv overlays KEY=VALUE entries on base, keeping base's order and
// appending new keys in the order given.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// readBinary reads a compiled binary; kiln built it, so its size is bounded
// by what the linker wrote.
func readBinary(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading the built binary: %w", err)
	}
	return b, nil
}
