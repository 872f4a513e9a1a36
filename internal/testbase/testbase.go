// Package testbase writes local stand-ins for the base images kiln builds
// on, so that tests and the demo run on machines that cannot pull them.
// It owns one OCI image layout and nothing else: it never talks to a
// registry, and kiln's own build code must not import it.
//
// The layout has three entries, each a multi-platform OCI index named by
// its org.opencontainers.image.ref.name annotation:
//
//   - static, for gcr.io/distroless/static-debian12 (linux/amd64,
//     linux/arm64): distroless's /etc/passwd, /etc/group and
//     /etc/nsswitch.conf, the CA bundle of the host's ca-certificates
//     package, /usr/share/zoneinfo from tzdata (without its posix/ and
//     right/ copies), an /etc/os-release naming the stand-in, /tmp, /root
//     and /home/nonroot. The config runs as 65532 in /home/nonroot.
//   - base, for gcr.io/distroless/base-debian12 (linux/amd64,
//     linux/arm64): static plus the glibc runtime from libc6 and libgcc-s1
//     (amd64) or libc6-arm64-cross and libgcc-s1-arm64-cross (arm64), in
//     Debian's multiarch directory with the loader link the ELF
//     interpreter path names, /etc/ld.so.conf and a real /etc/ld.so.cache.
//     The host's ldconfig builds the amd64 cache; it skips libraries of a
//     foreign architecture, so this package writes the arm64 cache itself.
//   - alpine, for alpine:3.19 (linux/amd64 only): the static files except
//     nsswitch.conf, musl from the musl package as /lib/ld-musl-x86_64.so.1,
//     and /bin/busybox from busybox-static with /bin/sh linked to it. Debian
//     offers an amd64 host no aarch64 musl runtime or busybox, so there is
//     no arm64 alpine.
//
// The generator expects an amd64 Debian 12 host; a missing host file is
// reported as a MissingHostFileError naming the package to install.
//
// Layers are reproducible (sorted entries, fixed owners, modes and
// mtimes, deterministic gzip), so one machine always writes the same
// digests. Those digests still depend on the installed versions of the
// Debian packages above, which is why tests compute them at run time and
// the demo pins them with `kiln lock`.
package testbase

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kilnbuild/kiln/internal/layoutdir"
)

// RefNameAnnotation is the index.json annotation that names an entry.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Names returns the layout's entry names in the order Write writes them.
func Names() []string { return []string{"static", "base", "alpine"} }

// Write writes the stand-ins as an OCI image layout at dir and returns the
// digest of each entry's index by name. It builds the layout in a sibling
// temporary directory and only then replaces dir, so a failure leaves dir
// as it was. It refuses to replace a non-empty dir that is not an OCI
// layout.
func Write(dir string) (map[string]v1.Hash, error) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("the stand-ins are built from an amd64 Debian host's packages; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return host{root: "/"}.write(dir)
}

func (h host) write(dir string) (map[string]v1.Hash, error) {
	var digests map[string]v1.Hash
	err := layoutdir.Replace(dir, func(tmp string) (err error) {
		digests, err = h.writeLayout(tmp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return digests, nil
}

// writeLayout writes the stand-ins into the empty directory tmp.
func (h host) writeLayout(tmp string) (map[string]v1.Hash, error) {
	standIns, err := h.standIns()
	if err != nil {
		return nil, err
	}
	indexes := make([]v1.ImageIndex, len(standIns))
	for i, s := range standIns {
		if indexes[i], err = s.index(); err != nil {
			return nil, err
		}
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("writing the OCI layout: %w", err)
	}
	digests := make(map[string]v1.Hash, len(standIns))
	for i, s := range standIns {
		if err := p.AppendIndex(indexes[i], layout.WithAnnotations(map[string]string{RefNameAnnotation: s.name})); err != nil {
			return nil, fmt.Errorf("writing %s to the OCI layout: %w", s.name, err)
		}
		if digests[s.name], err = indexes[i].Digest(); err != nil {
			return nil, fmt.Errorf("computing the digest of %s: %w", s.name, err)
		}
	}
	if err := normalizeModes(tmp); err != nil {
		return nil, fmt.Errorf("setting the layout's file modes: %w", err)
	}
	return digests, nil
}

// normalizeModes makes the layout world-readable whatever the umask and
// ggcr's temp-file modes were, so that other users can read it.
func normalizeModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}

// index builds the multi-platform index of s.
func (s standIn) index() (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range s.archs {
		img, err := s.image(arch)
		if err != nil {
			return nil, fmt.Errorf("building %s for linux/%s: %w", s.name, arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        noArtifactType{img},
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, nil
}

// noArtifactType keeps ggcr from copying the config media type into the
// index descriptor as an artifactType, which upstream base images' indexes
// do not have.
type noArtifactType struct{ v1.Image }

func (noArtifactType) ArtifactType() (string, error) { return "", nil }

func (s standIn) image(arch string) (v1.Image, error) {
	fs, err := s.rootfs(arch)
	if err != nil {
		return nil, err
	}
	layer, err := fs.layer()
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	cfg := s.config
	cfg.Env = slices.Clone(cfg.Env)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("setting the image config: %w", err)
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "kiln internal/testbase: " + s.name + " stand-in",
		},
	})
}
