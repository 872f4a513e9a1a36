package sign

import (
	"context"
	"errors"
	"fmt"

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
// the tag is read, extended and rewritten, so two processes signing the
// same digest at once may lose one signature.
func (s *Signer) SignRemote(ctx context.Context, ref name.Digest) error {
	op := "signing " + ref.String()
	opts := s.ociOpts(ctx)
	se, err := signedEntity(ref, opts)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	sig, err := s.signDigest(ctx, ref)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	se, err = mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(s.dd))
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("reading the existing signatures: %w", err)}
	}
	if err := ociremote.WriteSignatures(ref.Context(), se, opts...); err != nil {
		return &Error{Op: op, Err: fmt.Errorf("pushing the signature: %w", err)}
	}
	return nil
}

// AttestRemote wraps predicate in an in-toto statement whose subject is
// ref's digest, signs it as a DSSE envelope and pushes it to the same
// repository under sha256-<hex>.att, keeping the attestations already there.
// predicateType is a URI (such as VerificationPredicateType) or one of
// cosign attest's --type names; "spdxjson" gives the SPDX predicate type
// https://spdx.dev/Document that cosign verify-attestation --type spdxjson
// expects.
func (s *Signer) AttestRemote(ctx context.Context, ref name.Digest, predicateType string, predicate []byte) error {
	op := fmt.Sprintf("attesting %s to %s", predicateType, ref)
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	opts := s.ociOpts(ctx)
	se, err := signedEntity(ref, opts)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	att, err := s.attest(ctx, h, ref.Context().String(), predicateType, predicate)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	se, err = mutate.AttachAttestationToEntity(se, att, mutate.WithDupeDetector(s.attDD))
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("reading the existing attestations: %w", err)}
	}
	if err := ociremote.WriteAttestations(ref.Context(), se, opts...); err != nil {
		return &Error{Op: op, Err: fmt.Errorf("pushing the attestation: %w", err)}
	}
	return nil
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
