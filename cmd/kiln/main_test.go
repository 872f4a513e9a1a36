package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kilnbuild/kiln/internal/testbase"
	"github.com/kilnbuild/kiln/internal/testregistry"
	"github.com/kilnbuild/kiln/verify"
)

var update = flag.Bool("update", false, "rewrite the golden files inside testdata/*.txtar with what the commands print now")

// fixtures are what every script shares, made once per test binary in
// TestMain: the stand-in base images, a registry, and the host's Go setup.
type fixtures struct {
	bases    string            // OCI layout of testbase's stand-in bases
	digests  map[string]string // stand-in name -> index digest
	basesErr error             // why the layout could not be written

	registry    string // host:port of the registry scripts push to; "" when none
	registryLog string // its log, when TestMain started it

	goEnv map[string]string // GOCACHE, GOMODCACHE, … as `go env` reports them
}

// fx is written once in TestMain before any test runs, and only read after.
var fx fixtures

func TestMain(m *testing.M) {
	// The run.* checks of the scripts' kiln re-run this test binary as
	// their sandbox.
	if code, ok := verify.SandboxInit(); ok {
		os.Exit(code)
	}
	testscript.Main(withFixtures{m}, map[string]func(){
		"kiln": func() { os.Exit(run(os.Args[1:])) },
	})
}

// withFixtures sets the fixtures up around the tests. testscript.Main exits
// the process itself, so teardown must happen inside Run.
type withFixtures struct{ m *testing.M }

func (w withFixtures) Run() int {
	tmp, err := os.MkdirTemp("", "kiln-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if fx.goEnv, err = hostGoEnv(); err != nil {
		fmt.Fprintln(os.Stderr, "kiln e2e:", err)
		return 1
	}

	fx.bases = filepath.Join(tmp, "bases")
	if digests, err := testbase.Write(fx.bases); err != nil {
		fx.basesErr = fmt.Errorf("writing the stand-in base images: %w", err)
	} else {
		fx.digests = map[string]string{}
		for n, d := range digests {
			fx.digests[n] = d.String()
		}
	}

	switch r := os.Getenv("KILN_TEST_REGISTRY"); {
	case r != "":
		fx.registry = r
	default:
		bin, err := exec.LookPath("docker-registry")
		if err != nil {
			break // scripts that need one skip themselves with [!registry]
		}
		reg, err := testregistry.Start(bin, filepath.Join(tmp, "registry"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "kiln e2e: starting docker-registry:", err)
			return 1
		}
		defer reg.Stop()
		fx.registry, fx.registryLog = reg.Addr, reg.Log
	}
	return w.m.Run()
}

// hostGoEnv reads the go command's settings, so that scripts, whose
// environment testscript empties, build with the host's warm caches.
func hostGoEnv() (map[string]string, error) {
	keys := []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOTOOLCHAIN"}
	out, err := exec.Command("go", append([]string{"env", "-json"}, keys...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("running `go env`: %w", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("reading `go env -json`: %w", err)
	}
	return env, nil
}

func TestScripts(t *testing.T) {
	hello, err := filepath.Abs(filepath.Join("..", "..", "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                "testdata",
		UpdateScripts:      *update,
		RequireUniqueNames: true,
		// Report every failing assertion of a script, not only the first:
		// config_errors.txtar checks many independent cases.
		ContinueOnError: true,
		Setup: func(env *testscript.Env) error {
			if fx.basesErr != nil {
				return fx.basesErr
			}
			home, err := os.UserHomeDir()
			if err != nil {
				home = env.Getenv("WORK")
			}
			env.Setenv("HOME", home)
			for k, v := range fx.goEnv {
				if v != "" {
					env.Setenv(k, v)
				}
			}
			// crane and friends are installed with `go install`.
			path := env.Getenv("PATH")
			if gobin := filepath.Join(fx.goEnv["GOPATH"], "bin"); fx.goEnv["GOPATH"] != "" && !slices.Contains(filepath.SplitList(path), gobin) {
				path += string(filepath.ListSeparator) + gobin
			}
			env.Setenv("PATH", path)

			env.Setenv("HELLO", hello)
			env.Setenv("SQLITE", filepath.Join(filepath.Dir(hello), "sqlite"))
			env.Setenv("ROOT", filepath.Dir(filepath.Dir(hello)))
			env.Setenv("BASES", fx.bases)
			for n, d := range fx.digests {
				env.Setenv(strings.ToUpper(n)+"_DIGEST", d)
			}
			env.Setenv("REGISTRY", fx.registry)
			// runc names the container's cgroup after its id: make it unique.
			env.Setenv("RUNC_ID", fmt.Sprintf("kiln-e2e-%d-%s", os.Getpid(), strings.TrimPrefix(filepath.Base(env.WorkDir), "script-")))
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "registry":
				return fx.registry != "", nil
			case "reglog":
				return fx.registryLog != "", nil
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"kiln-exit":   cmdKilnExit,
			"expand":      cmdExpand,
			"unexpand":    cmdUnexpand,
			"json":        cmdJSON,
			"runc-config": cmdRuncConfig,
			"reglog":      cmdReglog,
		},
	})
}

// TestCIMeetsEveryCondition fails, under CI (CI set), when a condition a
// script names does not hold there, since then a script skips itself or
// its guarded lines do not run: CI runs as root and installs every tool
// the scripts name (make deps-test).
func TestCIMeetsEveryCondition(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Skip("only under CI, which must run every script line")
	}
	path := os.Getenv("PATH")
	if fx.goEnv["GOPATH"] != "" {
		path += string(filepath.ListSeparator) + filepath.Join(fx.goEnv["GOPATH"], "bin") // as Setup does
	}
	t.Setenv("PATH", path)
	scripts, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	conds := regexp.MustCompile(`(?m)^(?:\[!?[^\]\s]+\] )+`)
	cond := regexp.MustCompile(`\[!?([^\]\s]+)\]`)
	for _, script := range scripts {
		b, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		body, _, _ := strings.Cut(string(b), "\n-- ") // the script, not its files
		seen := map[string]bool{}
		for _, guard := range conds.FindAllString(body, -1) {
			for _, m := range cond.FindAllStringSubmatch(guard, -1) {
				c := m[1]
				if seen[c] {
					continue
				}
				seen[c] = true
				var ok bool
				switch {
				case strings.HasPrefix(c, "exec:"):
					_, err := exec.LookPath(strings.TrimPrefix(c, "exec:"))
					ok = err == nil
				case c == "registry":
					ok = fx.registry != ""
				case c == "reglog":
					ok = fx.registryLog != ""
				case c == "root":
					ok = os.Geteuid() == 0
				default:
					t.Errorf("%s: unknown condition [%s]", script, c)
					continue
				}
				if !ok {
					t.Errorf("%s: [%s] does not hold, so what it guards does not run", script, c)
				}
			}
		}
	}
}

// cmdKilnExit runs the kiln binary and asserts its exact exit code:
//
//	kiln-exit N args...
//
// Its stdout and stderr become the script's, as with exec.
func cmdKilnExit(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("kiln-exit: write the expected exit code instead of !")
	}
	if len(args) < 1 {
		ts.Fatalf("usage: kiln-exit CODE [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("kiln-exit: %q is not an exit code", args[0])
	}
	err = ts.Exec("kiln", args[1:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("kiln-exit: %v", err)
	}
	if got != want {
		ts.Fatalf("kiln %s: exit code %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// cmdExpand replaces $VAR and ${VAR} in each file with the script's
// environment, so configs can name $HELLO, $BASES, $REGISTRY….
//
//	expand file...
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: expand file...")
	}
	for _, f := range args {
		s := ts.ReadFile(f)
		var missing []string
		s = os.Expand(s, func(k string) string {
			v := ts.Getenv(k)
			if v == "" {
				missing = append(missing, k)
			}
			return v
		})
		if len(missing) > 0 {
			ts.Fatalf("expand %s: empty or unset: %s", f, strings.Join(missing, ", "))
		}
		ts.Check(os.WriteFile(ts.MkAbs(f), []byte(s), 0o644))
	}
}

// cmdUnexpand is the reverse of expand, for golden files: it replaces the
// value of each named variable in file with $NAME, longest value first.
//
//	unexpand file NAME...
func cmdUnexpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: unexpand file NAME...")
	}
	s := ts.ReadFile(args[0])
	names := slices.Clone(args[1:])
	sort.SliceStable(names, func(i, j int) bool { return len(ts.Getenv(names[i])) > len(ts.Getenv(names[j])) })
	for _, n := range names {
		if v := ts.Getenv(n); v != "" {
			s = strings.ReplaceAll(s, v, "$"+n)
		}
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(s), 0o644))
}

// cmdJSON prints the values at each query in a JSON file, one per line:
// strings bare, everything else as compact JSON. A query is a dotted path
// whose segments are an object key, an array index, * (every element), or
// key=value (the array elements, or the object itself, whose key has that
// value). It fails when a
// query selects nothing, so `! json file query` asserts absence.
//
//	json file query...
func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: json file query...")
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile(args[0])))
	dec.UseNumber()
	ts.Check(dec.Decode(&doc))
	var out strings.Builder
	var missing []string
	for _, q := range args[1:] {
		vals := jsonQuery([]any{doc}, strings.Split(q, "."))
		if len(vals) == 0 {
			missing = append(missing, q)
		}
		for _, v := range vals {
			if s, ok := v.(string); ok {
				out.WriteString(s)
			} else {
				b, err := json.Marshal(v)
				ts.Check(err)
				out.Write(b)
			}
			out.WriteByte('\n')
		}
	}
	switch {
	case neg && len(missing) == 0:
		ts.Fatalf("json %s: every query selected something:\n%s", args[0], out.String())
	case !neg && len(missing) > 0:
		ts.Fatalf("json %s: nothing at %s", args[0], strings.Join(missing, ", "))
	}
	fmt.Fprint(ts.Stdout(), out.String())
}

func jsonQuery(vals []any, path []string) []any {
	if len(path) == 0 {
		return vals
	}
	seg := path[0]
	var next []any
	for _, v := range vals {
		switch v := v.(type) {
		case map[string]any:
			if k, want, ok := strings.Cut(seg, "="); ok {
				if fmt.Sprint(v[k]) == want { // a filter after a filter: keep or drop this element
					next = append(next, v)
				}
			} else if seg == "*" {
				keys := make([]string, 0, len(v))
				for k := range v {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					next = append(next, v[k])
				}
			} else if x, ok := v[seg]; ok {
				next = append(next, x)
			}
		case []any:
			if k, want, ok := strings.Cut(seg, "="); ok {
				for _, item := range v {
					if m, ok := item.(map[string]any); ok && fmt.Sprint(m[k]) == want {
						next = append(next, item)
					}
				}
			} else if seg == "*" {
				next = append(next, v...)
			} else if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(v) {
				next = append(next, v[i])
			}
		}
	}
	return jsonQuery(next, path[1:])
}

// cmdRuncConfig makes an umoci bundle runnable without a terminal, with
// the given process arguments.
//
//	runc-config bundle args...
func cmdRuncConfig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: runc-config bundle args...")
	}
	file := filepath.Join(ts.MkAbs(args[0]), "config.json")
	var spec map[string]any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(file)), &spec))
	proc, ok := spec["process"].(map[string]any)
	if !ok {
		ts.Fatalf("runc-config: %s has no process object", file)
	}
	proc["terminal"] = false
	proc["args"] = args[1:]
	b, err := json.MarshalIndent(spec, "", "\t")
	ts.Check(err)
	ts.Check(os.WriteFile(file, b, 0o644))
}

// cmdReglog counts, in the log of the registry TestMain started, the blob
// uploads begun (POST …/blobs/uploads/) and manifests put by digest for one
// repository:
//
//	reglog repo
//
// prints "blob uploads: N" and "manifest puts by digest: M".
func cmdReglog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: reglog repository")
	}
	if fx.registryLog == "" {
		ts.Fatalf("reglog: no registry log (guard the line with [reglog])")
	}
	log, err := os.ReadFile(fx.registryLog)
	ts.Check(err)
	repo := regexp.QuoteMeta(args[0])
	// The access log lines: 127.0.0.1 - - [date] "POST /v2/repo/blobs/uploads/ HTTP/1.1" 202 …
	uploads := regexp.MustCompile(`(?m)^\S+ - - \[[^\]]*\] "POST /v2/` + repo + `/blobs/uploads/`)
	manifests := regexp.MustCompile(`(?m)^\S+ - - \[[^\]]*\] "PUT /v2/` + repo + `/manifests/sha256:`)
	fmt.Fprintf(ts.Stdout(), "blob uploads: %d\nmanifest puts by digest: %d\n",
		len(uploads.FindAllIndex(log, -1)), len(manifests.FindAllIndex(log, -1)))
}
