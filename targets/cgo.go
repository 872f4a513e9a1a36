package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
)

// CgoPackage is a non-standard-library package that has cgo code.
type CgoPackage struct {
	ImportPath string   `json:"import_path"`
	CgoFiles   []string `json:"cgo_files"`
	// WithoutCgo says what happens to the package with CGO_ENABLED=0:
	// "fails" (it does not build), or "stub" (it builds by dropping its cgo
	// files, so it compiles and fails at run time, like go-sqlite3).
	WithoutCgo string   `json:"without_cgo"`
	Dropped    []string `json:"dropped_files,omitempty"` // files only built with cgo
}

func (c CgoPackage) String() string {
	if c.WithoutCgo == "stub" {
		dropped := strings.Join(c.Dropped, ", ")
		if len(c.Dropped) > 3 {
			dropped = fmt.Sprintf("%s and %d more files", strings.Join(c.Dropped[:3], ", "), len(c.Dropped)-3)
		}
		return fmt.Sprintf("%s (builds without cgo only by dropping %s: it compiles, then fails at run time)", c.ImportPath, dropped)
	}
	return fmt.Sprintf("%s (cgo files %s; does not build without cgo)", c.ImportPath, strings.Join(c.CgoFiles, ", "))
}

type listedPackage struct {
	ImportPath string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	Error      *struct{ Err string }
}

// listing says what an analysis was made from, so that the cache can tell
// whether the answer came only from what its key covers.
type listing struct {
	paths []string // every non-standard package either go list named
	// failed: a package did not load for a reason other than cgo being off
	// (a module that did not download, a missing go.sum line). go list -e
	// reports that as the package's Error, not as a failure, and the answer
	// may change with nothing in the key changing.
	failed bool
}

// AnalyzeCgo says which packages outside the standard library that the
// main package in dir depends on have cgo files, and for each whether it
// builds without cgo, for a caller without a config (kiln init). env is
// the go command's environment (GOOS, GOARCH, the caches); CGO_ENABLED is
// set both ways. Nothing is cached.
func AnalyzeCgo(ctx context.Context, dir, main string, tags, env []string) ([]CgoPackage, error) {
	pkgs, _, err := analyzeCgo(ctx, dir, main, tags, env)
	return pkgs, err
}

// analyzeCgo lists the packages the main package depends on, once with
// CGO_ENABLED=1 and once with 0, and returns those outside the standard
// library that have cgo files, saying for each whether it builds without cgo
// and what it loses, and what the answer came from. env is the build
// environment of the row (GOOS, GOARCH, caches); tags are its build tags.
func analyzeCgo(ctx context.Context, dir, main string, tags []string, env []string) ([]CgoPackage, listing, error) {
	var with, without map[string]listedPackage
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		with, err = goList(gctx, dir, main, tags, setEnv(env, "CGO_ENABLED", "1"))
		return err
	})
	g.Go(func() (err error) {
		without, err = goList(gctx, dir, main, tags, setEnv(env, "CGO_ENABLED", "0"))
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, listing{}, err
	}
	var l listing
	for path, p := range with {
		if !p.Standard {
			l.paths = append(l.paths, path)
		}
		l.failed = l.failed || p.Error != nil
	}
	for path, p := range without {
		if _, ok := with[path]; !ok && !p.Standard {
			l.paths = append(l.paths, path)
		}
		// Without cgo, a package with cgo files may not load: that is the
		// answer, not a failure.
		l.failed = l.failed || p.Error != nil && len(with[path].CgoFiles) == 0
	}
	var out []CgoPackage
	for _, p := range with {
		if p.Standard || len(p.CgoFiles) == 0 {
			continue
		}
		c := CgoPackage{ImportPath: p.ImportPath, CgoFiles: p.CgoFiles, WithoutCgo: "fails"}
		if q, ok := without[p.ImportPath]; ok && q.Error == nil && len(q.GoFiles) > 0 {
			c.WithoutCgo = "stub"
			for _, f := range append(slices.Clone(p.GoFiles), p.CgoFiles...) {
				if !slices.Contains(q.GoFiles, f) {
					c.Dropped = append(c.Dropped, f)
				}
			}
			sort.Strings(c.Dropped)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ImportPath < out[j].ImportPath })
	return out, l, nil
}

func goList(ctx context.Context, dir, main string, tags []string, env []string) (map[string]listedPackage, error) {
	args := []string{"list", "-e", "-deps", "-json=ImportPath,Standard,GoFiles,CgoFiles,Error"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, main)...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the packages of %s (go %s): %w\n%s", main, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list output: %w", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs, nil
}

func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
