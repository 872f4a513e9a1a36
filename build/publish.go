package build

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kilnbuild/kiln/internal/layoutdir"
	"github.com/kilnbuild/kiln/targets"
	"github.com/kilnbuild/kiln/verify"
)

// pubRow is a verified row as the publishing stages take it: built and
// verified by this release, or by a split job (--merge).
type pubRow struct {
	row        targets.Row
	image      v1.Image
	digest     string // the image's
	baseDigest string // the base platform manifest's; "" for scratch
	buildInfo  *buildinfo.BuildInfo
	checks     []verify.Finding
}

// artifact is what a target publishes: one image, or an index of platform
// images. Exactly one of image and index is set.
type artifact struct {
	target string
	image  v1.Image
	index  v1.ImageIndex
	tags   []string // full tags, e.g. latest-static and latest
	rows   []*pubRow

	// perPlatform names each platform image of an index (static-linux-amd64),
	// so tools that cannot pick a platform from an index (umoci) can use it.
	perPlatform map[string]v1.Image
}

// artifacts groups rows by target: one image, or an index when the target
// has several platforms, annotated with the base's digest baseDigest gives.
func artifacts(plan *targets.Plan, rows []*pubRow, baseDigest func(*targets.Target) v1.Hash, spec ImageSpec) ([]*artifact, error) {
	var arts []*artifact
	for _, t := range plan.Targets {
		var mine []*pubRow
		for _, pr := range rows {
			if pr.row.Target.Name == t.Name {
				mine = append(mine, pr)
			}
		}
		a := &artifact{target: t.Name, rows: mine}
		for _, tg := range plan.Config.Image.Tags {
			a.tags = append(a.tags, tg+"-"+t.Name)
		}
		if t.Default {
			a.tags = append(a.tags, plan.Config.Image.Tags...)
		}
		if len(mine) == 1 {
			a.image = mine[0].image
			arts = append(arts, a)
			continue
		}
		images := make([]v1.Image, len(mine))
		platforms := make([]targets.Platform, len(mine))
		for i, pr := range mine {
			images[i], platforms[i] = pr.image, pr.row.Platform
		}
		idx, err := Index(images, platforms, t.Base, baseDigest(t), spec)
		if err == nil {
			_, err = idx.Digest()
		}
		if err != nil {
			return nil, fmt.Errorf("building the index of %s: %w", t.Name, err)
		}
		a.index, a.perPlatform = idx, map[string]v1.Image{}
		for _, pr := range mine {
			a.perPlatform[pr.row.ID()] = pr.image
		}
		arts = append(arts, a)
	}
	return arts, nil
}

func (a *artifact) taggable() remote.Taggable {
	if a.index != nil {
		return a.index
	}
	return a.image
}

func (a *artifact) digest() (v1.Hash, error) {
	if a.index != nil {
		return a.index.Digest()
	}
	return a.image.Digest()
}

// writeLayout writes every artifact into a fresh OCI image layout at dir,
// one entry per target named by org.opencontainers.image.ref.name, plus one
// per platform image of a multi-platform target. It builds
// the layout beside dir and swaps it in only when complete, so a failure
// leaves the previous layout (or none) rather than a half-written one.
func writeLayout(dir string, arts []*artifact) error {
	return layoutdir.Replace(dir, func(tmp string) error {
		p, err := layout.Write(tmp, empty.Index)
		if err != nil {
			return fmt.Errorf("starting the layout: %w", err)
		}
		for _, a := range arts {
			opt := layout.WithAnnotations(map[string]string{AnnotationRefName: a.target})
			if a.index != nil {
				err = p.AppendIndex(a.index, opt)
			} else {
				err = p.AppendImage(a.image, opt)
			}
			if err != nil {
				return fmt.Errorf("writing %s into the layout: %w", a.target, err)
			}
			for _, n := range slices.Sorted(maps.Keys(a.perPlatform)) {
				if err := p.AppendImage(a.perPlatform[n], layout.WithAnnotations(map[string]string{AnnotationRefName: n})); err != nil {
					return fmt.Errorf("writing %s into the layout: %w", n, err)
				}
			}
		}
		return nil
	})
}

// push uploads every artifact by digest in one pass, so blobs shared by
// targets (a common base) go up once and blobs the registry has are skipped.
// It writes no tag.
func push(ctx context.Context, repo name.Repository, arts []*artifact, opts []remote.Option) error {
	todo := map[name.Reference]remote.Taggable{}
	for _, a := range arts {
		d, err := a.digest()
		if err != nil {
			return err
		}
		todo[repo.Digest(d.String())] = a.taggable()
	}
	if err := remote.MultiWrite(todo, opts...); err != nil {
		return &RegistryError{Op: "pushing to", Ref: repo.String(), Err: err}
	}
	return nil
}

// tag points each artifact's tags at its pushed digest. It runs only after
// every target was pushed.
func tag(ctx context.Context, repo name.Repository, arts []*artifact, opts []remote.Option) error {
	// One pusher (the caller's, with remote.Reuse): one connection setup for
	// the repository, not one per tag; the tags are independent manifest
	// PUTs, sent together.
	pusher, err := remote.NewPusher(opts...)
	if err != nil {
		return &RegistryError{Op: "tagging", Ref: repo.String(), Err: err}
	}
	type job struct {
		ref name.Tag
		t   remote.Taggable
	}
	var jobs []job
	for _, a := range arts {
		for _, t := range a.tags {
			jobs = append(jobs, job{repo.Tag(t), a.taggable()})
		}
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := pusher.Push(ctx, j.ref, j.t); err != nil {
				errs[i] = &RegistryError{Op: "tagging", Ref: j.ref.String(), Err: err}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
