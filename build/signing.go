package build

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
)

// newSigner loads the signing key of the config, before anything is built:
// a wrong password or a missing key must not cost a build, and nothing is
// signed (or pushed) after it fails.
func newSigner(ctx context.Context, cfg targets.SignConfig, registry []remote.Option) (*sign.Signer, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	return sign.New(ctx, sign.Options{
		Key: cfg.Key, TLog: cfg.TLog, Keyless: cfg.Keyless,
		RemoteOpts: registry,
	})
}

// signPushed signs every pushed digest (each target's index and each of its
// platform images) and attaches each platform image's attestations, after
// every target was pushed and before any tag is written. Subjects are
// signed concurrently; what one subject gets is written in order, since its
// signatures and attestations accumulate under one tag each.
func (r *release) signPushed(ctx context.Context, repo name.Repository, arts []*artifact) error {
	start := time.Now()
	atts, err := r.attestations(arts)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, a := range arts {
		d, err := a.digest()
		if err != nil {
			return err
		}
		if a.index != nil {
			g.Go(func() error { return r.signer.SignRemote(gctx, repo.Digest(d.String())) })
		}
		for _, rs := range a.rows {
			g.Go(func() error {
				ref := repo.Digest(rs.res.ImageDigest)
				if err := r.signer.SignRemote(gctx, ref); err != nil {
					return err
				}
				for _, att := range atts[rs] {
					if err := r.signer.AttestRemote(gctx, ref, att.predicateType, att.predicate); err != nil {
						return err
					}
				}
				rs.res.Signed = true
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, a := range arts {
		d, _ := a.digest()
		r.progress("sign", nil, "%s: %s@%s", a.target, repo, d)
	}
	r.res.Timings.add("sign", time.Since(start))
	return nil
}

// signLayouts writes one cosign-readable layout per target under
// <output>/signed/<target> (a layout can carry the signatures of a single
// subject), signs the target's image or index there and attaches each
// platform image's attestations to it.
func (r *release) signLayouts(ctx context.Context, arts []*artifact) error {
	start := time.Now()
	atts, err := r.attestations(arts)
	if err != nil {
		return err
	}
	for _, a := range arts {
		dir := filepath.Join(r.plan.Output, "signed", a.target)
		d, err := sign.WriteSignedLayout(dir, a.taggable())
		if err != nil {
			return err
		}
		if err := r.signer.SignLayout(ctx, dir, d); err != nil {
			return err
		}
		for _, rs := range a.rows {
			for _, att := range atts[rs] {
				if err := r.signer.AttestLayout(ctx, dir, d, att.predicateType, att.predicate); err != nil {
					return err
				}
			}
			rs.res.Signed = true
		}
		r.progress("sign", nil, "%s: %s", a.target, dir)
	}
	r.res.Timings.add("sign", time.Since(start))
	return nil
}

type attestation struct {
	predicateType string
	predicate     []byte
}

// attestations are what sign.attest asks for, for every row: the SPDX SBOM
// of its binary and base, and its verification report. They are all made
// before anything is signed, so one that cannot be made leaves no row
// signed without it.
func (r *release) attestations(arts []*artifact) (map[*rowState][]attestation, error) {
	cfg := r.plan.Config.Sign
	out := map[*rowState][]attestation{}
	for _, a := range arts {
		for _, rs := range a.rows {
			if cfg.Attests("sbom") {
				if rs.buildInfo == nil {
					return nil, &sign.Error{Op: "making the SBOM of " + rs.row.ID(), Err: fmt.Errorf("the binary's build info is not known (a release.json from a kiln older than its merge?); run the split job again, or drop sbom from sign.attest")}
				}
				base := sign.BaseRef{Name: rs.row.Target.Base.Name(), Digest: rs.res.Base.Digest}
				sbom, err := sign.SBOM(r.plan.Config.App.Name, rs.buildInfo, base, r.spec.Created)
				if err != nil {
					return nil, &sign.Error{Op: "making the SBOM of " + rs.row.ID(), Err: err}
				}
				out[rs] = append(out[rs], attestation{sign.SBOMPredicateType, sbom})
			}
			if cfg.Attests("verification") {
				p := sign.VerificationPredicate{KilnVersion: r.opts.UserAgent, Target: rs.row.Target.Name, Platform: rs.row.Platform.String(),
					Libc: string(rs.row.Target.Libc), Passed: failedCheck(rs.res.Checks) == ""}
				for _, c := range rs.res.Checks {
					p.Checks = append(p.Checks, sign.Check{ID: c.ID, Status: string(c.Status), Evidence: c.Evidence})
				}
				data, err := p.JSON()
				if err != nil {
					return nil, &sign.Error{Op: "making the verification attestation of " + rs.row.ID(), Err: err}
				}
				out[rs] = append(out[rs], attestation{sign.VerificationPredicateType, data})
			}
		}
	}
	return out, nil
}

// SignImage signs one image or index already in a registry, by digest
// (kiln sign). A tag is refused: what it points to can change between
// reading and signing.
func SignImage(ctx context.Context, ref string, cfg targets.SignConfig, keychain authn.Keychain) (v1.Hash, error) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return v1.Hash{}, &targets.ConfigError{Key: "IMAGE", Problem: fmt.Sprintf("%q is not a reference by digest (%v)", ref, err),
			Fix: "sign REPO@sha256:…; signing a tag is a race (`crane digest REPO:TAG` gives the digest)"}
	}
	s, err := newSigner(ctx, cfg, registryOptions(keychain, 0))
	if err != nil {
		return v1.Hash{}, err
	}
	if s == nil {
		return v1.Hash{}, &targets.ConfigError{Key: "--key", Problem: "no key to sign with", Fix: "pass --key cosign.key (or env://VAR, or a KMS URI)"}
	}
	if err := s.SignRemote(ctx, d); err != nil {
		return v1.Hash{}, err
	}
	return v1.NewHash(d.DigestStr())
}
