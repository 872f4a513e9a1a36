package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
)

// compile runs one `go build` for row into dir and returns the binary's path.
//
// The binary goes to a per-row path that persists between runs (keyed by
// the module, the row and its exact build arguments and environment), so
// that when nothing changed go build finds it up to date and skips the
// link, as it does for a developer's own `go build -o`.
func compile(ctx context.Context, p *targets.Plan, row targets.Row, dir string, host []string) (string, error) {
	env := row.BuildEnv(host)
	out := filepath.Join(binCacheDir(dir, p.Dir, row.ID(), p.BuildArgs(row, ""), env), "app")
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

// binCacheDir is where a row's binary is written: under the user's cache
// directory, in a directory named by a hash of everything that decides the
// binary, or under fallback when there is no usable cache directory.
func binCacheDir(fallback, module, rowID string, args, env []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%q\n", module, rowID, args, env)
	key := hex.EncodeToString(h.Sum(nil))[:24]
	if root := binCacheRoot(); root != "" {
		dir := filepath.Join(root, key)
		if os.MkdirAll(dir, 0o755) == nil {
			now := time.Now()
			_ = os.Chtimes(dir, now, now) // in use: pruning keeps it
			return dir
		}
	}
	dir := filepath.Join(fallback, rowID)
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

func binCacheRoot() string {
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(base, "kiln", "bin")
}

// binCacheAge is how long an unused row binary is kept: it only spares go
// build a relink, so a few days of releases is what it is for.
const binCacheAge = 3 * 24 * time.Hour

// pruneBinCache removes the row binaries no release used for binCacheAge.
func pruneBinCache() {
	if root := binCacheRoot(); root != "" {
		kilncache.PruneDir(root, binCacheAge)
	}
}
