package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/kilnbuild/kiln/targets"
)

// goEnvCaches asks the go command where its build and module caches are, so
// that every parallel build is told the same directories explicitly.
func goEnvCaches(ctx context.Context, host []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "-json", "GOCACHE", "GOMODCACHE")
	cmd.Env = host
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("running `go env` (is Go installed and on PATH?): %w", err)
	}
	var v struct{ GOCACHE, GOMODCACHE string }
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("reading `go env` output: %w", err)
	}
	env := append([]string(nil), host...)
	if v.GOCACHE != "" {
		env = append(env, "GOCACHE="+v.GOCACHE)
	}
	if v.GOMODCACHE != "" {
		env = append(env, "GOMODCACHE="+v.GOMODCACHE)
	}
	return env, nil
}

// compile runs one `go build` for row into dir and returns the binary's path.
func compile(ctx context.Context, p *targets.Plan, row targets.Row, dir string, host []string) (string, error) {
	out := filepath.Join(dir, row.ID(), "app")
	cmd := exec.CommandContext(ctx, "go", p.BuildArgs(row, out)...)
	cmd.Dir = p.Dir
	cmd.Env = row.BuildEnv(host)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return "", &CompileError{Row: row.ID(), Output: output.String(), Err: err}
	}
	return out, nil
}
