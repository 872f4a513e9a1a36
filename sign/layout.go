package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	clayout "github.com/sigstore/cosign/v2/pkg/oci/layout"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	"github.com/sigstore/cosign/v2/pkg/oci/signed"

	"github.com/kilnbuild/kiln/internal/layoutdir"
)

// The layout cosign verify --local-image reads (cosign's pkg/oci/layout,
// the format cosign save writes): index.json marks the signed subject and
// the images holding its signatures and attestations with a "kind"
// annotation. cosign takes the first descriptor of each kind (an index
// subject before an image subject) and ignores every other entry.
const (
	kindKey   = "kind"
	kindImage = "dev.cosignproject.cosign/image"
	kindIndex = "dev.cosignproject.cosign/imageIndex"
	kindSigs  = "dev.cosignproject.cosign/sigs"
	kindAtts  = "dev.cosignproject.cosign/atts"
)

// WriteSignedLayout writes subject, an image or an index, as the one signed
// subject of a fresh OCI image layout at dir, in the shape cosign verify
// --local-image reads. A layout can carry signatures for one subject only,
// so kiln writes one such layout per target (for example
// <output>/signed/<target>) and then calls SignLayout and AttestLayout on
// it. An existing layout at dir is replaced only once the new one is
// complete. It returns the subject's digest.
func WriteSignedLayout(dir string, subject remote.Taggable) (v1.Hash, error) {
	op := "writing the signed layout " + dir
	var (
		digest v1.Hash
		err    error
		write  func(path string) error
	)
	switch t := subject.(type) {
	case v1.ImageIndex:
		digest, err = t.Digest()
		write = func(p string) error { return clayout.WriteSignedImageIndex(p, signed.ImageIndex(t)) }
	case v1.Image:
		digest, err = t.Digest()
		write = func(p string) error { return clayout.WriteSignedImage(p, signed.Image(t)) }
	default:
		return v1.Hash{}, &Error{Op: op, Err: fmt.Errorf("%T is neither an image nor an index", subject)}
	}
	if err != nil {
		return v1.Hash{}, &Error{Op: op, Err: fmt.Errorf("computing the digest: %w", err)}
	}
	if err := layoutdir.Replace(dir, write); err != nil {
		return v1.Hash{}, &Error{Op: op, Err: err}
	}
	return digest, nil
}

// SignLayout signs the image or index with the given digest in the OCI
// image layout at dir and stores the signature in the layout, so that
//
//	cosign verify --local-image DIR --key cosign.pub --insecure-ignore-tlog=true
//
// accepts it. The subject must be listed in dir's index.json. If the layout
// does not yet mark a subject, the digest becomes its subject, which is
// possible only when it is the layout's one image or index (see
// WriteSignedLayout); a layout whose subject is another digest is an error.
// Signing twice with the same key adds nothing.
func (s *Signer) SignLayout(ctx context.Context, dir string, digest v1.Hash) error {
	op := fmt.Sprintf("signing %s in the layout %s", digest, dir)
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	l, err := openLayout(dir, digest)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	ref, err := name.NewDigest(l.identity + "@" + digest.String())
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	sig, err := s.signDigest(ctx, ref)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	if err := l.add(kindSigs, sig, s.dd); err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}

// AttestLayout is AttestRemote for a subject in an OCI image layout, with
// the same rules as SignLayout; cosign verify-attestation --local-image
// verifies the result.
func (s *Signer) AttestLayout(ctx context.Context, dir string, digest v1.Hash, predicateType string, predicate []byte) error {
	op := fmt.Sprintf("attesting %s to %s in the layout %s", predicateType, digest, dir)
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	l, err := openLayout(dir, digest)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	att, err := s.attest(ctx, digest, l.identity, predicateType, predicate)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	if err := l.add(kindAtts, att, s.attDD); err != nil {
		return &Error{Op: op, Err: err}
	}
	return nil
}

// signedLayout is a layout whose index.json marks a subject.
type signedLayout struct {
	dir  string
	path layout.Path
	// identity names the subject in payloads (docker-reference, the in-toto
	// subject name). A layout has no registry, so it is localhost/<dir
	// name>; cosign checks only the digest.
	identity string
}

// openLayout opens the layout at dir and makes sure digest is its cosign
// subject, marking it when the layout has no subject yet.
func openLayout(dir string, digest v1.Hash) (*signedLayout, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("not an OCI image layout: %w", err)
	}
	im, err := indexManifest(p)
	if err != nil {
		return nil, err
	}
	l := &signedLayout{dir: dir, path: p, identity: "localhost/" + repoName(dir)}
	if subj := cosignSubject(im); subj != nil {
		if subj.Digest != digest {
			return nil, fmt.Errorf("the layout's signed subject is %s, not %s: cosign verify --local-image verifies one image or index per layout, so write each into its own layout (WriteSignedLayout)", subj.Digest, digest)
		}
		return l, nil
	}
	var found *v1.Descriptor
	subjects := 0
	for i := range im.Manifests {
		d := &im.Manifests[i]
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		subjects++
		if d.Digest == digest {
			found = d
		}
	}
	switch {
	case found == nil:
		return nil, fmt.Errorf("%s is not listed in %s", digest, filepath.Join(dir, "index.json"))
	case subjects > 1:
		return nil, fmt.Errorf("the layout holds %d images or indexes, and cosign verify --local-image verifies exactly one per layout: write each into its own layout (WriteSignedLayout)", subjects)
	}
	if found.Annotations == nil {
		found.Annotations = map[string]string{}
	}
	found.Annotations[kindKey] = kindImage
	if found.MediaType.IsIndex() {
		found.Annotations[kindKey] = kindIndex
	}
	if err := writeIndexManifest(dir, im); err != nil {
		return nil, err
	}
	return l, nil
}

// cosignSubject is the descriptor cosign verify --local-image checks
// signatures against, or nil.
func cosignSubject(im *v1.IndexManifest) *v1.Descriptor {
	for _, kind := range []string{kindIndex, kindImage} {
		for i := range im.Manifests {
			if im.Manifests[i].Annotations[kindKey] == kind {
				return &im.Manifests[i]
			}
		}
	}
	return nil
}

// add appends sig to the subject's signatures (kindSigs) or attestations
// (kindAtts), unless an equal one signed by the same key is there, and
// points index.json at the new image.
func (l *signedLayout) add(kind string, sig oci.Signature, dd mutate.DupeDetector) error {
	what := "signatures"
	if kind == kindAtts {
		what = "attestations"
	}
	sii, err := clayout.SignedImageIndex(l.dir)
	if err != nil {
		return fmt.Errorf("reading the layout: %w", err)
	}
	var base oci.Signatures
	if kind == kindSigs {
		base, err = sii.Signatures()
	} else {
		base, err = sii.Attestations()
	}
	if err != nil {
		return fmt.Errorf("reading the existing %s: %w", what, err)
	}
	if base == nil {
		base = empty.Signatures()
	}
	dup, err := dd.Find(base, sig)
	if err != nil {
		return fmt.Errorf("reading the existing %s: %w", what, err)
	}
	if dup != nil {
		return nil
	}
	next, err := mutate.AppendSignatures(base, false, sig)
	if err != nil {
		return fmt.Errorf("adding to the %s: %w", what, err)
	}
	if err := l.path.WriteImage(next); err != nil {
		return fmt.Errorf("writing the %s: %w", what, err)
	}
	desc, err := partial.Descriptor(next)
	if err != nil {
		return err
	}
	desc.Annotations = map[string]string{kindKey: kind}
	im, err := indexManifest(l.path)
	if err != nil {
		return err
	}
	kept := im.Manifests[:0]
	for _, d := range im.Manifests {
		if d.Annotations[kindKey] != kind {
			kept = append(kept, d)
		}
	}
	im.Manifests = append(kept, *desc)
	return writeIndexManifest(l.dir, im)
}

func indexManifest(p layout.Path) (*v1.IndexManifest, error) {
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading index.json: %w", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index.json: %w", err)
	}
	return im.DeepCopy(), nil
}

// writeIndexManifest replaces dir/index.json atomically.
func writeIndexManifest(dir string, im *v1.IndexManifest) error {
	b, err := json.MarshalIndent(im, "", "   ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".index.json-")
	if err != nil {
		return fmt.Errorf("writing index.json: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, "index.json"))
	}
	if err != nil {
		return fmt.Errorf("writing index.json: %w", err)
	}
	return nil
}

// repoName makes a repository path component from the layout directory's
// name: lower case, [a-z0-9._-], at least two characters.
func repoName(dir string) string {
	base := filepath.Base(filepath.Clean(dir))
	if abs, err := filepath.Abs(dir); err == nil {
		base = filepath.Base(abs)
	}
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '.' || r == '_' || r == '-':
			if b.Len() > 0 {
				b.WriteRune(r)
			}
		default:
			if b.Len() > 0 {
				b.WriteRune('-')
			}
		}
	}
	out := strings.TrimRight(b.String(), "._-")
	if len(out) < 2 {
		return "layout"
	}
	return out
}
