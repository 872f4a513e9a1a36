package sign

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
)

// SignRemote signs the image or index at ref and pushes the signature to
// the same repository under cosign's tag, sha256-<hex>.sig, keeping the
// signatures already there. Signing the same digest twice with the same key
// adds nothing. The digest must already be in the registry. As with cosign,
// the tag is read, extended and rewritten: calls on one Signer take turns,
// but two processes signing the same digest at once may lose one signature.
func (s *Signer) SignRemote(ctx context.Context, ref name.Digest) error {
	return s.pushRemote(ctx, "signing "+ref.String(), ref, kindSigs, func() (oci.Signature, error) {
		return s.signDigest(ctx, ref)
	})
}

// AttestRemote wraps predicate in an in-toto statement whose subject is
// ref's digest, signs it as a DSSE envelope and pushes it to the same
// repository under sha256-<hex>.att, keeping the attestations already there,
// with the same rules as SignRemote. predicateType is a URI (such as
// VerificationPredicateType) or one of cosign attest's --type names;
// "spdxjson" gives the SPDX predicate type https://spdx.dev/Document that
// cosign verify-attestation --type spdxjson expects.
func (s *Signer) AttestRemote(ctx context.Context, ref name.Digest, predicateType string, predicate []byte) error {
	op := fmt.Sprintf("attesting %s to %s", predicateType, ref)
	return s.pushRemote(ctx, op, ref, kindAtts, func() (oci.Signature, error) {
		h, err := v1.NewHash(ref.DigestStr())
		if err != nil {
			return nil, err
		}
		return s.attest(ctx, h, ref.Context().String(), predicateType, predicate)
	})
}

// pushRemote adds the signature or attestation (kind kindSigs or kindAtts)
// that newSig makes to ref's in the registry, unless an equal one signed by
// the same key is there. ref must be in the registry before anything is
// signed (or uploaded to a transparency log).
func (s *Signer) pushRemote(ctx context.Context, op string, ref name.Digest, kind string, newSig func() (oci.Signature, error)) error {
	attach, write, what, dd := mutate.AttachSignatureToEntity, ociremote.WriteSignatures, "signature", s.dd
	if kind == kindAtts {
		attach, write, what, dd = mutate.AttachAttestationToEntity, ociremote.WriteAttestations, "attestation", s.attDD
	}
	defer s.lockTag(ref, kind)()
	opts := s.ociOpts(ctx)
	se, err := signedEntity(ref, opts)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	sig, err := newSig()
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	se, err = attach(se, sig, mutate.WithDupeDetector(dd))
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("reading the existing %ss: %w", what, err)}
	}
	if err := write(ref.Context(), se, opts...); err != nil {
		return &Error{Op: op, Err: fmt.Errorf("pushing the %s: %w", what, err)}
	}
	return nil
}

// lockTag makes the calls on this Signer that rewrite one digest's
// signature or attestation tag take turns: each reads the tag, adds to it
// and writes it back, so two at once would keep only one addition. It
// returns the unlock.
func (s *Signer) lockTag(ref name.Digest, kind string) func() {
	m, _ := s.tagLocks.LoadOrStore(ref.Context().String()+"@"+ref.DigestStr()+" "+kind, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// signedEntity fetches the manifest at ref. Unlike cosign sign, it refuses
// to sign a digest the registry does not have: kiln signs what it pushed.
func signedEntity(ref name.Digest, opts []ociremote.Option) (oci.SignedEntity, error) {
	se, err := ociremote.SignedEntity(ref, opts...)
	var nf *ociremote.EntityNotFoundError
	if errors.As(err, &nf) {
		return nil, errors.New("the registry does not have this digest: push it before signing")
	}
	if err != nil {
		return nil, fmt.Errorf("fetching the manifest: %w", err)
	}
	return se, nil
}
