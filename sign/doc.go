// Package sign owns kiln's signing: cosign signatures for pushed images and
// indexes, in-toto attestations (an SPDX SBOM and kiln's verification
// report) signed as DSSE envelopes, and the same for images that live in an
// OCI image layout. It uses cosign v2 as a library (pkg/cosign,
// pkg/oci/..., pkg/signature) and never runs a cosign binary; what it
// writes is what cosign sign and cosign attest write, so the real cosign
// CLI verifies it.
//
// It must not print, prompt or exit: failures are *Error values for the
// caller to render (the CLI maps them to exit code 4), and a key password
// comes from Options.Password or COSIGN_PASSWORD, never from a terminal.
// It must not import verify or build; it is the only kiln package that
// imports cosign. Registry I/O goes through go-containerregistry options
// the caller passes in (Options.RemoteOpts).
//
// # Keys and the network
//
// Options.Key is a cosign key file, env://VAR (the PEM in an environment
// variable) or a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://,
// through cosign's KMS providers, with those providers' usual credentials).
// By default signing is offline: nothing is uploaded to a transparency
// log, so verifiers pass --insecure-ignore-tlog=true. Options.TLog uploads
// each signature to Rekor and stores Rekor's promise with it, as cosign
// sign does. Options.Keyless gets a short-lived Fulcio certificate for an
// ephemeral key from an OIDC identity token (Options.IDToken,
// SIGSTORE_ID_TOKEN, or cosign's CI providers such as GitHub Actions with
// id-token: write) and always uploads to Rekor; it needs the network and is
// not exercised by the tests. Verify keyless signatures with
// --certificate-identity and --certificate-oidc-issuer instead of --key.
//
// # Registry
//
// SignRemote pushes the signature for REPO@sha256:<hex> to REPO:sha256-<hex>.sig
// and AttestRemote pushes attestations to REPO:sha256-<hex>.att, the tag
// scheme cosign uses. Both add to what is there (the same signature twice
// is stored once). To verify:
//
//	cosign verify --key cosign.pub --insecure-ignore-tlog=true REPO@sha256:<hex>
//	cosign verify-attestation --key cosign.pub --insecure-ignore-tlog=true --type spdxjson REPO@sha256:<hex>
//	cosign verify-attestation --key cosign.pub --insecure-ignore-tlog=true \
//	    --type https://kilnbuild.dev/attestations/verification/v1 REPO@sha256:<hex>
//
// A signature on an index covers the index manifest (and, through the
// digests it lists, the platform manifests), but cosign verify checks only
// the digest it is given. So a multi-platform target should be signed at
// its index digest and at each platform image digest release.json reports,
// and each platform image attested with that platform's verification
// report.
//
// # OCI image layout
//
// cosign verify --local-image DIR reads the layout the way cosign save
// writes it (cosign's pkg/oci/layout): in DIR/index.json, the signed
// subject is the first descriptor annotated "kind":
// "dev.cosignproject.cosign/imageIndex", or else the first annotated
// "dev.cosignproject.cosign/image"; its signatures are the image annotated
// "kind": "dev.cosignproject.cosign/sigs" and its attestations the one
// annotated "dev.cosignproject.cosign/atts". Other entries are ignored, so
// a layout can carry signatures for exactly one image or index. kiln's
// release layout holds every target, so signing a layout goes per target:
//
//	digest, err := sign.WriteSignedLayout("dist/signed/static", indexOrImage)
//	err = signer.SignLayout(ctx, "dist/signed/static", digest)
//	err = signer.AttestLayout(ctx, "dist/signed/static", digest, sign.SBOMPredicateType, sbom)
//
// SignLayout also accepts a layout that holds only the one image or index
// (it marks it as the subject). To verify:
//
//	cosign verify --local-image --key cosign.pub --insecure-ignore-tlog=true dist/signed/static
//	cosign verify-attestation --local-image --key cosign.pub --insecure-ignore-tlog=true \
//	    --type spdxjson dist/signed/static
//
// A layout has no registry, so the docker-reference in the signed payload
// and the in-toto subject name are localhost/<layout directory name>;
// cosign checks only the digest. Copying the layout elsewhere keeps the
// signatures valid.
//
// # The verification predicate
//
// Predicate type https://kilnbuild.dev/attestations/verification/v1
// (VerificationPredicateType); the subject is one platform image's digest
// and the predicate is a VerificationPredicate:
//
//	{
//	  "$schema": "https://json-schema.org/draft/2020-12/schema",
//	  "$id": "https://kilnbuild.dev/attestations/verification/v1",
//	  "type": "object",
//	  "required": ["kiln_version", "target", "platform", "libc", "passed", "checks"],
//	  "additionalProperties": false,
//	  "properties": {
//	    "kiln_version": {"type": "string", "description": "kiln version that ran the checks"},
//	    "target":       {"type": "string", "description": "target name from kiln.yaml"},
//	    "platform":     {"type": "string", "description": "os/arch[/variant], e.g. linux/amd64"},
//	    "libc":         {"enum": ["none", "glibc", "musl"]},
//	    "passed":       {"type": "boolean", "description": "false exactly when some check has status fail"},
//	    "checks": {
//	      "type": "array",
//	      "items": {
//	        "type": "object",
//	        "required": ["id", "status", "evidence"],
//	        "additionalProperties": false,
//	        "properties": {
//	          "id":       {"type": "string", "description": "check id from the kiln spec, e.g. link.interp"},
//	          "status":   {"enum": ["pass", "fail", "warn", "skip"]},
//	          "evidence": {"type": "string", "description": "one line a person can act on"}
//	        }
//	      }
//	    }
//	  }
//	}
//
// For example:
//
//	{"kiln_version": "0.4.0", "target": "static", "platform": "linux/amd64", "libc": "none",
//	 "passed": true, "checks": [{"id": "link.mode", "status": "pass", "evidence": "static: no PT_INTERP, no DT_NEEDED"}]}
//
// # SBOM
//
// SBOM writes SPDX 2.3 JSON from a binary's Go build info, attested with
// predicate type https://spdx.dev/Document (SBOMPredicateType, what
// cosign's --type spdxjson means). Its output depends only on its
// arguments.
package sign
