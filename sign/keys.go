package sign

import (
	"github.com/sigstore/cosign/v2/pkg/cosign"
)

// GenerateKeyPair returns a new encrypted cosign private key and its public
// key, both PEM, as `cosign generate-key-pair` writes them. kiln's demo uses
// it so that a newcomer needs no cosign binary to see signing work.
func GenerateKeyPair(password []byte) (private, public []byte, err error) {
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, nil, &Error{Op: "generating a key pair", Err: err}
	}
	return kb.PrivateBytes, kb.PublicBytes, nil
}
