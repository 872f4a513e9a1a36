package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"path/filepath"

	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

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

// BinaryLayer returns a layer holding only the binary at entrypoint, with
// its parent directories. Everything that could vary between runs is fixed:
// entry order, uid/gid 0, mode 0555 (dirs 0755), mtime, no user names.
func BinaryLayer(binary []byte, entrypoint string, mtime time.Time, mt types.MediaType) (v1.Layer, error) {
	var buf bytes.Buffer
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
	l := &memLayer{raw: buf.Bytes(), mediaType: mt}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: hexSHA256(l.raw)}
	// The compressed form is cached by the uncompressed digest: an unchanged
	// binary is not compressed again on the next release.
	cache := layerCachePath(l.diffID)
	if data, err := os.ReadFile(cache); err == nil && verifyGzipOf(data, l.raw) {
		l.compressed = data
		now := time.Now()
		_ = os.Chtimes(cache, now, now) // in use: keep it
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
		if cache != "" && os.MkdirAll(filepath.Dir(cache), 0o755) == nil {
			pruneLayerCache(filepath.Dir(cache))
			tmp := cache + ".tmp-" + randomHex(4)
			if os.WriteFile(tmp, l.compressed, 0o644) == nil {
				_ = os.Rename(tmp, cache)
			}
		}
	}
	// Both forms stay in memory with their digests, so neither publishing
	// nor verification compresses or decompresses this layer again.
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hexSHA256(l.compressed)}
	return l, nil
}

// layerCachePath is where the compressed form of a layer with this diff id
// is kept ("" when there is no user cache directory).
func layerCachePath(diffID v1.Hash) string {
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(base, "kiln", "layers", diffID.Hex+".tar.gz")
}

// pruneLayerCache removes cached layers not used for two weeks, so the
// cache holds what recent releases use rather than every binary ever built.
func pruneLayerCache(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-14 * 24 * time.Hour)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

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

// Assemble puts the binary layer on the base for one platform and sets the
// config and annotations. baseDigest is the platform manifest of the base
// (zero for scratch).
func Assemble(base v1.Image, baseRef targets.BaseRef, baseDigest v1.Hash, binary []byte, spec ImageSpec) (v1.Image, error) {
	baseType, err := base.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading the base's media type: %w", err)
	}
	layerType := types.OCILayer
	if baseType == types.DockerManifestSchema2 {
		layerType = types.DockerLayer // keep one family of media types per manifest
	}
	layer, err := BinaryLayer(binary, spec.Entrypoint, spec.Created, layerType)
	if err != nil {
		return nil, fmt.Errorf("writing the binary layer: %w", err)
	}
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
	if len(spec.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range cf.Config.Labels {
			labels[k] = v
		}
		for k, v := range spec.Labels {
			labels[k] = v
		}
		cf.Config.Labels = labels
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
