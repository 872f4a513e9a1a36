package build

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/kilnbuild/kiln/sign"
	"github.com/kilnbuild/kiln/targets"
)

// The signing stage of a release: every published image and index signed,
// each platform image's attestations attached, after everything was
// published and before any tag is written.

// newSigner loads the signing key of the config, before anything is built:
// a wrong password or a missing key must not cost a build, and nothing is
// signed (or pushed) after it fails. It is nil when nothing is signed.
func newSigner(ctx context.Context, cfg targets.SignConfig, registry []remote.Option) (*sign.Signer, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	return sign.New(ctx, sign.Options{
		Key: cfg.Key, TLog: cfg.TLog, Keyless: cfg.Keyless,
		RemoteOpts: registry,
	})
}

// signing is one signing stage: what it signs with and for, and which rows
// it signed (by row ID).
type signing struct {
	*release
	signer *sign.Signer
	plan   *targets.Plan
	spec   ImageSpec

	mu     sync.Mutex
	signed map[string]bool
}

func (s *signing) done(pr *pubRow) {
	s.mu.Lock()
	s.signed[pr.row.ID()] = true
	s.mu.Unlock()
}

// pushed signs every pushed digest (each target's index and each of its
// platform images) and attaches each platform image's attestations.
// Subjects are signed concurrently; what one subject gets is written in
// order, since its signatures and attestations accumulate under one tag
// each.
func (s *signing) pushed(ctx context.Context, repo name.Repository, arts []*artifact) error {
	atts, err := attestations(s.plan.Config, s.opts.UserAgent, s.spec, arts)
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
			g.Go(func() error { return s.signer.SignRemote(gctx, repo.Digest(d.String())) })
		}
		for _, pr := range a.rows {
			g.Go(func() error {
				ref := repo.Digest(pr.digest)
				if err := s.signer.SignRemote(gctx, ref); err != nil {
					return err
				}
				for _, att := range atts[pr] {
					if err := s.signer.AttestRemote(gctx, ref, att.predicateType, att.predicate); err != nil {
						return err
					}
				}
				s.done(pr)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, a := range arts {
		d, _ := a.digest()
		s.progress("sign", nil, "%s: %s@%s", a.target, repo, d)
	}
	return nil
}

// layouts writes one cosign-readable layout per target under
// <output>/signed/<target> (a layout can carry the signatures of a single
// subject), signs the target's image or index there and attaches each
// platform image's attestations to it.
func (s *signing) layouts(ctx context.Context, arts []*artifact) error {
	atts, err := attestations(s.plan.Config, s.opts.UserAgent, s.spec, arts)
	if err != nil {
		return err
	}
	for _, a := range arts {
		dir := filepath.Join(s.plan.Output, "signed", a.target)
		d, err := sign.WriteSignedLayout(dir, a.taggable())
		if err != nil {
			return err
		}
		if err := s.signer.SignLayout(ctx, dir, d); err != nil {
			return err
		}
		for _, pr := range a.rows {
			for _, att := range atts[pr] {
				if err := s.signer.AttestLayout(ctx, dir, d, att.predicateType, att.predicate); err != nil {
					return err
				}
			}
			s.done(pr)
		}
		s.progress("sign", nil, "%s: %s", a.target, dir)
	}
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
func attestations(cfg *targets.Config, kilnVersion string, spec ImageSpec, arts []*artifact) (map[*pubRow][]attestation, error) {
	out := map[*pubRow][]attestation{}
	for _, a := range arts {
		for _, pr := range a.rows {
			if cfg.Sign.Attests("sbom") {
				if pr.buildInfo == nil {
					return nil, &SignError{Op: "making the SBOM of " + pr.row.ID(), Err: fmt.Errorf("the binary's build info is not known (a release.json from a kiln older than its merge?); run the split job again, or drop sbom from sign.attest")}
				}
				base := sign.BaseRef{Name: pr.row.Target.Base.Name(), Digest: pr.baseDigest}
				sbom, err := sign.SBOM(cfg.App.Name, pr.buildInfo, base, spec.Created)
				if err != nil {
					return nil, &SignError{Op: "making the SBOM of " + pr.row.ID(), Err: err}
				}
				out[pr] = append(out[pr], attestation{sign.SBOMPredicateType, sbom})
			}
			if cfg.Sign.Attests("verification") {
				p := sign.VerificationPredicate{KilnVersion: kilnVersion, Target: pr.row.Target.Name, Platform: pr.row.Platform.String(),
					Libc: string(pr.row.Target.Libc), Passed: failedCheck(pr.checks) == ""}
				for _, c := range pr.checks {
					p.Checks = append(p.Checks, sign.Check{ID: c.ID, Status: string(c.Status), Evidence: c.Evidence})
				}
				data, err := p.JSON()
				if err != nil {
					return nil, &SignError{Op: "making the verification attestation of " + pr.row.ID(), Err: err}
				}
				out[pr] = append(out[pr], attestation{sign.VerificationPredicateType, data})
			}
		}
	}
	return out, nil
}
