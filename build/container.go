package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	kilncache "github.com/kilnbuild/kiln/internal/cache"
	"github.com/kilnbuild/kiln/targets"
)

// ContainerRuntime is docker or podman, found and checked once per release.
type ContainerRuntime struct {
	Name string // docker or podman
	Path string
}

// FindRuntime resolves builder_runtime: auto prefers a docker client with a
// reachable engine, then podman. A client without an engine (the docker CLI
// alone) does not count. None usable is a *MissingError.
func FindRuntime(ctx context.Context, want string) (*ContainerRuntime, error) {
	candidates := []string{"docker", "podman"}
	if want != "auto" {
		candidates = []string{want}
	}
	var tried []string
	for _, name := range candidates {
		path, err := exec.LookPath(name)
		if err != nil {
			tried = append(tried, name+": not installed")
			continue
		}
		args := []string{"version", "--format", "{{.Server.Version}}"}
		if name == "podman" {
			args = []string{"version", "--format", "{{.Version}}"}
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		out, err := exec.CommandContext(cctx, path, args...).CombinedOutput()
		cancel()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: not usable (%s)", name, firstLineOf(strings.TrimSpace(string(out)))))
			continue
		}
		return &ContainerRuntime{Name: name, Path: path}, nil
	}
	return nil, &MissingError{Problem: fmt.Sprintf("no container runtime for builder: container (%s)", strings.Join(tried, "; ")),
		Fix: "install podman (Debian package podman) or docker with a running engine"}
}

// ensureImage makes sure the builder image is present, pulling it by
// digest when it is not; one that cannot be pulled is a *MissingError.
func (rt *ContainerRuntime) ensureImage(ctx context.Context, ref string) error {
	inspect := exec.CommandContext(ctx, rt.Path, "image", "inspect", "--format", "{{.Id}}", ref)
	if inspect.Run() == nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, rt.Path, "pull", ref).CombinedOutput()
	if err != nil {
		return &MissingError{Problem: fmt.Sprintf("the builder image %s is not present and cannot be pulled: %s", ref, lastLines(string(out), 3)),
			Fix: "pull or load it (docker/podman pull), or correct the digest"}
	}
	return nil
}

// builderCacheDir is where a builder image's GOCACHE and GOMODCACHE live on
// the host: kiln's cache entry for the image digest, so caches of different
// toolchains never mix and survive between runs, or a directory of tmp
// without a cache (--no-cache).
func builderCacheDir(c *kilncache.Cache, image targets.BaseRef, tmp string) (string, error) {
	name := strings.TrimPrefix(image.Digest, "sha256:")[:16]
	dir := c.DirEntry("builder", name)
	if dir == "" {
		dir = filepath.Join(tmp, "builder-"+name)
	}
	for _, sub := range []string{"build", "mod"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", fmt.Errorf("creating the builder cache: %w", err)
		}
	}
	return dir, nil
}

// compileInContainer runs the row's go build inside its builder image: the
// module read-only at /src, the keyed caches mounted, the output written to
// a host directory, no network unless builder_network. Modules are
// downloaded on the host first, into the keyed module cache.
func compileInContainer(ctx context.Context, c *kilncache.Cache, p *targets.Plan, row targets.Row, rt *ContainerRuntime, dir string, host []string) (string, error) {
	b := row.Target.Builder
	cache, err := builderCacheDir(c, b.Image, dir)
	if err != nil {
		return "", &CompileError{Row: row.ID(), Err: err}
	}
	out := filepath.Join(dir, row.ID())
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", &CompileError{Row: row.ID(), Err: err}
	}
	if !b.Network {
		dl := exec.CommandContext(ctx, "go", "mod", "download")
		dl.Dir = p.Dir
		dl.Env = append(row.BuildEnv(host), "GOMODCACHE="+filepath.Join(cache, "mod"), "GOFLAGS=-mod=mod")
		if o, err := dl.CombinedOutput(); err != nil {
			return "", &CompileError{Row: row.ID(), Output: string(o), Err: fmt.Errorf("downloading modules on the host for the offline build container: %w", err)}
		}
	}

	name := "kiln-build-" + randomHex(6)
	args := []string{"run", "--rm", "--name", name,
		"-v", p.Dir + ":/src:ro",
		"-v", filepath.Join(cache, "build") + ":/kiln/cache/build",
		"-v", filepath.Join(cache, "mod") + ":/kiln/cache/mod",
		"-v", out + ":/kiln/out",
		"-w", "/src",
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
	}
	if !b.Network {
		args = append(args, "--network", "none")
	}
	if rt.Name == "podman" {
		// What works on hosts without crun and with hybrid cgroups.
		args = append(args, "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
	}
	for _, kv := range containerEnv(row, host, b.Network) {
		args = append(args, "-e", kv)
	}
	args = append(args, b.Image.Raw, "go")
	args = append(args, p.BuildArgs(row, "/kiln/out/app")...)

	cmd := exec.CommandContext(ctx, rt.Path, args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err = cmd.Run()
	// --rm removes it on exit; a cancelled build may leave it running.
	_ = exec.Command(rt.Path, "rm", "-f", name).Run()
	if err != nil {
		return "", &CompileError{Row: row.ID(), Output: output.String(), Err: fmt.Errorf("go build in %s (%s): %w", b.Image.Raw, rt.Name, err)}
	}
	return filepath.Join(out, "app"), nil
}

// containerEnv is the build environment inside the builder: the same
// decisions as a host build (CGO_ENABLED, GOOS, GOARCH, tags, the user's
// env), with paths and network settings of the container.
func containerEnv(row targets.Row, host []string, network bool) []string {
	var env []string
	for _, kv := range row.BuildEnv(host) {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "TMPDIR", "USER", "GOROOT", "GOPATH", "GOCACHE", "GOMODCACHE", "GOENV", "GOFLAGS", "GOTOOLCHAIN":
			continue // the image's own, or set below
		case "GOPROXY":
			if !network {
				continue
			}
		}
		env = append(env, kv)
	}
	goflags := "-buildvcs=false" // the module is mounted read-only and the image may have no git
	if v := lookupEnv(row.BuildEnv(host), "GOFLAGS"); v != "" {
		goflags = v + " " + goflags
	}
	env = append(env, "HOME=/tmp", "GOCACHE=/kiln/cache/build", "GOMODCACHE=/kiln/cache/mod", "GOFLAGS="+goflags, "GOTOOLCHAIN=local")
	if !network {
		env = append(env, "GOPROXY=off")
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
