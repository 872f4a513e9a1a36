package sign

import "encoding/json"

// VerificationPredicateType is the in-toto predicate type of kiln's
// verification report; the body is a VerificationPredicate. See the package
// documentation for its schema.
const VerificationPredicateType = "https://kilnbuild.dev/attestations/verification/v1"

// VerificationPredicate is what kiln's verify stage found on one platform
// image: the predicate of a VerificationPredicateType attestation whose
// subject is that image's digest.
type VerificationPredicate struct {
	KilnVersion string  `json:"kiln_version"`
	Target      string  `json:"target"`   // the kiln.yaml target name
	Platform    string  `json:"platform"` // os/arch[/variant]
	Libc        string  `json:"libc"`     // none, glibc or musl
	Passed      bool    `json:"passed"`   // false exactly when some check failed
	Checks      []Check `json:"checks"`
}

// Check is one verification check, mirroring verify.Finding.
type Check struct {
	ID       string `json:"id"`     // SPEC §4 id, e.g. link.interp
	Status   string `json:"status"` // pass, fail, warn or skip
	Evidence string `json:"evidence"`
}

// JSON encodes the predicate for AttestRemote or AttestLayout; checks is
// always an array, never null.
func (p VerificationPredicate) JSON() ([]byte, error) {
	if p.Checks == nil {
		p.Checks = []Check{}
	}
	return json.Marshal(p)
}
