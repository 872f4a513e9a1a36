package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
)

// compile runs one `go build` for row into dir and returns the binary's path.
//
// The binary goes to a per-row directory of kiln's cache that persists
// between runs (keyed by the module, the row and its exact build arguments
// and environment), so that when nothing changed go build finds it up to
// date and skips the link, as it does for a developer's own `go build -o`.
// Without a cache (--no-cache) it goes to dir, and is linked every time.
func compile(ctx context.Context, c *kilncache.Cache, p *targets.Plan, row targets.Row, dir string, host []string) (string, error) {
	env := row.BuildEnv(host)
	out := filepath.Join(binDir(c, dir, p.Dir, row.ID(), p.BuildArgs(row, ""), env), "app")
	cmd := exec.CommandContext(ctx, "go", p.BuildArgs(row, out)...)
	cmd.Dir = p.Dir
	cmd.Env = env
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return "", &CompileError{Row: row.ID(), Output: output.String(), Err: err}
	}
	return out, nil
}

// binDir is where a row's binary is written: the cache's bin entry named by
// everything that decides the binary, or a directory of fallback when there
// is no usable cache.
func binDir(c *kilncache.Cache, fallback, module, rowID string, args, env []string) string {
	if d := c.DirEntry("bin", c.Key("bin/v1", module, rowID, args, env)); d != "" {
		return d
	}
	dir := filepath.Join(fallback, rowID)
	_ = os.MkdirAll(dir, 0o755)
	return dir
}
