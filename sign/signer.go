package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	providers "github.com/sigstore/cosign/v2/pkg/providers/all"
	csignature "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/cosign/v2/pkg/types"
	fulcioapi "github.com/sigstore/fulcio/pkg/api"
	rekorclient "github.com/sigstore/rekor/pkg/client"
	rekorapi "github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/oauthflow"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	"golang.org/x/oauth2"
)

// Public Sigstore services, used when TLog or Keyless is set and the
// Options leave the URL empty.
const (
	DefaultRekorURL  = "https://rekor.sigstore.dev"
	DefaultFulcioURL = fulcioapi.SigstorePublicServerURL
)

const userAgent = "kiln-sign"

// Options say how to sign.
type Options struct {
	// Key is a cosign private key: a file path, env://VAR (the PEM itself
	// in an environment variable), or a KMS URI (awskms://, gcpkms://,
	// azurekms://, hashivault://) resolved by cosign's own KMS support.
	// Exactly one of Key and Keyless must be set.
	Key string

	// Password returns the password of an encrypted key file (every key
	// cosign generate-key-pair writes is encrypted). nil means the
	// COSIGN_PASSWORD environment variable; when that is unset, loading a
	// key file fails with a message saying to set it. The package never
	// prompts.
	Password func() ([]byte, error)

	// TLog uploads every signature to the Rekor transparency log at
	// RekorURL and stores the log's promise (bundle) with the signature.
	// It needs the network; false (the default) signs fully offline, and
	// verifiers must then pass --insecure-ignore-tlog=true.
	TLog bool

	// Keyless signs with a short-lived Fulcio certificate for an ephemeral
	// key, bound to the OIDC identity in IDToken; it implies TLog. It
	// needs the network.
	Keyless bool

	// RemoteOpts are go-containerregistry options for registry I/O (auth,
	// transport, user agent). nil means authn.DefaultKeychain. The
	// context of each call is added to them.
	RemoteOpts []remote.Option

	RekorURL  string // TLog and Keyless; empty means DefaultRekorURL
	FulcioURL string // Keyless; empty means DefaultFulcioURL

	// IDToken is the OIDC identity token for Keyless. Empty means
	// SIGSTORE_ID_TOKEN, or whatever cosign's CI providers find (GitHub
	// Actions with id-token: write, Buildkite, GCP, SPIFFE, the
	// /var/run/sigstore/cosign/oidc-token file).
	IDToken string
}

// Signer signs images and attaches attestations in cosign's formats, to a
// registry (the .sig and .att tag scheme) or to an OCI image layout (the
// layout cosign verify --local-image reads). A Signer is safe for
// concurrent use.
type Signer struct {
	sv    signature.SignerVerifier
	dd    mutate.DupeDetector // signatures
	attDD mutate.DupeDetector // attestations

	cert, chain []byte // keyless only: the Fulcio certificate and its chain

	rekor     *rekorapi.Rekor // nil: offline
	signerPEM []byte          // the signer as Rekor records it: the certificate, or the public key

	remoteOpts []remote.Option
	tagLocks   sync.Map   // see lockTag
	layoutMu   sync.Mutex // serialises index.json rewrites
}

// New loads the key once (or, with Keyless, obtains the certificate) and
// returns a Signer. A missing or corrupt key, a wrong password, a KMS that
// cannot be reached or has no such key is an *Error.
func New(ctx context.Context, o Options) (*Signer, error) {
	s := &Signer{remoteOpts: o.RemoteOpts}
	switch {
	case o.Keyless && o.Key != "":
		return nil, &Error{Op: "configuring signing", Err: errors.New("set either a key or keyless signing, not both")}
	case o.Keyless:
		if err := s.keyless(ctx, o); err != nil {
			return nil, err
		}
	case o.Key == "":
		return nil, &Error{Op: "configuring signing", Err: errors.New("no key: set a cosign key (a file, env://VAR or a KMS URI) or keyless signing")}
	default:
		if err := s.loadKey(ctx, o); err != nil {
			return nil, err
		}
	}
	s.dd = cremote.NewDupeDetector(s.sv)
	s.attDD = attestationDupes{s.sv}
	if o.TLog || o.Keyless {
		u := o.RekorURL
		if u == "" {
			u = DefaultRekorURL
		}
		c, err := rekorclient.GetRekorClient(u, rekorclient.WithUserAgent(userAgent))
		if err != nil {
			return nil, &Error{Op: "connecting to Rekor at " + u, Err: err}
		}
		s.rekor = c
	}
	return s, nil
}

var errNoPassword = errors.New("the key is encrypted and no password was given: set COSIGN_PASSWORD (or pass Options.Password)")

func envPassword() ([]byte, error) {
	if p, ok := os.LookupEnv("COSIGN_PASSWORD"); ok {
		return []byte(p), nil
	}
	return nil, errNoPassword
}

func (s *Signer) loadKey(ctx context.Context, o Options) error {
	pass := o.Password
	if pass == nil {
		pass = envPassword
	}
	op := "loading key " + o.Key
	sv, err := csignature.SignerVerifierFromKeyRef(ctx, o.Key, func(bool) ([]byte, error) { return pass() }, nil)
	if err != nil {
		return &Error{Op: op, Err: explainKeyError(err)}
	}
	// KMS providers connect lazily; asking for the public key now makes a
	// KMS that cannot be reached, or a key that does not exist there, fail
	// here rather than after the images were pushed.
	pub, err := sv.PublicKey(sigopts.WithContext(ctx))
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("reading the public key: %w", err)}
	}
	if s.signerPEM, err = cryptoutils.MarshalPublicKeyToPEM(pub); err != nil {
		return &Error{Op: op, Err: fmt.Errorf("encoding the public key: %w", err)}
	}
	s.sv = sv
	return nil
}

// explainKeyError turns cosign's key loading errors into messages that say
// what to fix. cosign's own messages never include the password.
func explainKeyError(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, errNoPassword), errors.Is(err, fs.ErrNotExist):
		return err
	case strings.Contains(msg, "decryption failed"):
		return errors.New("wrong password: the key could not be decrypted")
	case strings.Contains(msg, "invalid pem block"), strings.Contains(msg, "unsupported pem type"),
		strings.Contains(msg, "parsing private key"):
		return fmt.Errorf("not a cosign private key (%v): expected the encrypted PEM that cosign generate-key-pair writes", err)
	}
	return err
}

// keyless gets a Fulcio certificate for a fresh ECDSA key, bound to the
// caller's OIDC identity, the way cosign sign does without --key.
func (s *Signer) keyless(ctx context.Context, o Options) error {
	const op = "keyless signing"
	token := o.IDToken
	if token == "" && providers.Enabled(ctx) {
		t, err := providers.Provide(ctx, "sigstore")
		if err != nil {
			return &Error{Op: op, Err: fmt.Errorf("fetching an OIDC identity token: %w", err)}
		}
		token = t
	}
	if token == "" {
		return &Error{Op: op, Err: errors.New("no OIDC identity token: set SIGSTORE_ID_TOKEN, or run where cosign finds one (GitHub Actions with id-token: write, Buildkite, GCP, SPIFFE)")}
	}
	id, err := (&oauthflow.StaticTokenGetter{RawToken: token}).GetIDToken(nil, oauth2.Config{})
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("reading the OIDC identity token: %w", err)}
	}
	priv, err := cosign.GeneratePrivateKey()
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("generating an ephemeral key: %w", err)}
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(&priv.PublicKey)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	proof, err := sv.SignMessage(strings.NewReader(id.Subject), sigopts.WithContext(ctx))
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("signing the proof of possession: %w", err)}
	}
	furl := o.FulcioURL
	if furl == "" {
		furl = DefaultFulcioURL
	}
	u, err := url.Parse(furl)
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("parsing the Fulcio URL %q: %w", furl, err)}
	}
	resp, err := fulcioapi.NewClient(u, fulcioapi.WithUserAgent(userAgent)).SigningCert(fulcioapi.CertificateRequest{
		PublicKey:          fulcioapi.Key{Content: pubPEM},
		SignedEmailAddress: proof,
	}, id.RawString)
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("getting a certificate from Fulcio at %s: %w", furl, err)}
	}
	s.sv, s.cert, s.chain, s.signerPEM = sv, resp.CertPEM, resp.ChainPEM, resp.CertPEM
	return nil
}

// ociOpts are the options for cosign's registry functions.
func (s *Signer) ociOpts(ctx context.Context) []ociremote.Option {
	ro := s.remoteOpts
	if len(ro) == 0 {
		ro = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	}
	ro = append(slices.Clip(ro), remote.WithContext(ctx))
	return []ociremote.Option{ociremote.WithRemoteOptions(ro...)}
}

// signDigest signs cosign's simple-signing payload for ref: what both the
// registry and the layout signatures carry.
func (s *Signer) signDigest(ctx context.Context, ref name.Digest) (oci.Signature, error) {
	payload, err := sigpayload.Cosign{Image: ref}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding the payload: %w", err)
	}
	return s.signPayload(ctx, payload)
}

// signPayload signs a simple-signing payload the way cosign sign does: the
// signature goes, base64-encoded, into the layer's annotation.
func (s *Signer) signPayload(ctx context.Context, payload []byte) (oci.Signature, error) {
	raw, err := s.sv.SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing the payload: %w", err)
	}
	var opts []static.Option
	if s.cert != nil {
		opts = append(opts, static.WithCertChain(s.cert, s.chain))
	}
	if s.rekor != nil {
		h := sha256.New()
		h.Write(payload)
		entry, err := cosign.TLogUpload(ctx, s.rekor, raw, h, s.signerPEM)
		if err != nil {
			return nil, fmt.Errorf("uploading to the transparency log: %w", err)
		}
		opts = append(opts, static.WithBundle(cbundle.EntryToBundle(entry)))
	}
	return static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), opts...)
}

// attest builds the in-toto statement cosign attest would for the digest,
// signs it into a DSSE envelope and returns it as an attestation layer.
func (s *Signer) attest(ctx context.Context, digest v1.Hash, subject, predicateType string, predicate []byte) (oci.Signature, error) {
	if err := checkPredicateType(predicateType); err != nil {
		return nil, err
	}
	if digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("subject digest %s: only sha256 digests can be attested", digest)
	}
	stmt, err := attestation.GenerateStatement(attestation.GenerateOpts{
		Predicate: bytes.NewReader(predicate),
		Type:      predicateType,
		Digest:    digest.Hex,
		Repo:      subject,
	})
	if err != nil {
		return nil, fmt.Errorf("building the in-toto statement for %s: %w", predicateType, err)
	}
	payload, err := json.Marshal(stmt)
	if err != nil {
		return nil, fmt.Errorf("encoding the in-toto statement: %w", err)
	}
	var header struct {
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(payload, &header); err != nil {
		return nil, fmt.Errorf("reading back the in-toto statement: %w", err)
	}
	env, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing the in-toto statement: %w", err)
	}
	opts := []static.Option{
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{"predicateType": header.PredicateType}),
	}
	if s.cert != nil {
		opts = append(opts, static.WithCertChain(s.cert, s.chain))
	}
	if s.rekor != nil {
		entry, err := cosign.TLogUploadDSSEEnvelope(ctx, s.rekor, env, s.signerPEM)
		if err != nil {
			return nil, fmt.Errorf("uploading to the transparency log: %w", err)
		}
		opts = append(opts, static.WithBundle(cbundle.EntryToBundle(entry)))
	}
	return static.NewAttestation(env, opts...)
}

// cosignPredicateTypes are the short names cosign attest --type accepts;
// anything else must be a URI, as with cosign.
var cosignPredicateTypes = []string{
	"custom", "slsaprovenance", "slsaprovenance02", "slsaprovenance1", "spdx", "spdxjson",
	"cyclonedx", "link", "vuln", "openvex",
}

func checkPredicateType(t string) error {
	if slices.Contains(cosignPredicateTypes, t) {
		return nil
	}
	u, err := url.Parse(t)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return fmt.Errorf("predicate type %q is neither a URI nor one of cosign's names (%s)", t, strings.Join(cosignPredicateTypes, ", "))
	}
	return nil
}

// attestationDupes finds an attestation equal to a new one: the same
// in-toto statement, signed by the same key. cosign's dupe detector
// compares layer digests, which never match for attestations because the
// layer is the DSSE envelope and its signature is randomised; without this,
// every re-run of a release would add another copy.
type attestationDupes struct{ v signature.Verifier }

type envelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
}

func (d attestationDupes) Find(atts oci.Signatures, att oci.Signature) (oci.Signature, error) {
	raw, err := att.Payload()
	if err != nil {
		return nil, err
	}
	var want envelope
	if err := json.Unmarshal(raw, &want); err != nil {
		return nil, err
	}
	list, err := atts.Get()
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		b, err := a.Payload()
		if err != nil {
			continue
		}
		var got envelope
		if json.Unmarshal(b, &got) != nil || got != want {
			continue
		}
		if dsse.WrapVerifier(d.v).VerifySignature(bytes.NewReader(b), nil) == nil {
			return a, nil
		}
	}
	return nil, nil
}
