package targets

import (
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

var (
	// Names become image tags (<tag>-<target>), so they follow tag rules.
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$`)
)

// kilnOwnedEnv are build variables kiln sets from the target and platform;
// letting app.env override them would build something other than the plan.
var kilnOwnedEnv = []string{"GOOS", "GOARCH", "GOARM", "CGO_ENABLED"}

// flagsWithOwnKey are go build flags that have their own config key or that
// kiln must control to find the binary it built.
var flagsWithOwnKey = map[string]string{
	"-o":         "kiln chooses the output path",
	"-ldflags":   "use app.ldflags",
	"-tags":      "use app.tags",
	"-buildmode": "kiln builds executables (buildmode exe/pie)",
}

// validate checks everything that can be checked without touching the disk
// or the network.
func (c *Config) validate() error {
	bad := func(key, fix, format string, args ...any) error {
		return c.Errorf(key, fix, format, args...)
	}
	if c.Version != 1 {
		return bad("version", "set version: 1", "unsupported config version %d", c.Version)
	}
	if c.App.Name == "" {
		return bad("app.name", "set app.name, e.g. name: hello", "missing: the app needs a name")
	}
	if !nameRE.MatchString(c.App.Name) {
		return bad("app.name", "use lowercase letters, digits, '.', '_' and '-'", "%q is not a valid image name part", c.App.Name)
	}
	if c.App.Main == "" {
		return bad("app.main", "set app.main to the package to build, e.g. main: ./cmd/hello", "missing: which package to build")
	}
	for _, f := range c.App.Flags {
		flag, _, _ := strings.Cut(f, "=")
		flag = "-" + strings.TrimLeft(flag, "-")
		if why, ok := flagsWithOwnKey[flag]; ok {
			return bad("app.flags", why, "%q cannot be set in app.flags", f)
		}
		if !strings.HasPrefix(f, "-") {
			return bad("app.flags", "write flags only, e.g. [-trimpath]; the package goes in app.main", "%q is not a flag", f)
		}
	}
	if err := checkEnv(bad, "app.env", c.App.Env, true); err != nil {
		return err
	}

	if c.Image.Repository != "" {
		if _, err := name.NewRepository(c.Image.Repository); err != nil || strings.ContainsAny(c.Image.Repository, "@") {
			return bad("image.repository", "write host/path without tag or digest, e.g. registry.example.com/acme/hello", "%q is not a repository", c.Image.Repository)
		}
	}
	if c.Image.Output == "" {
		return bad("image.output", "set image.output to a directory, e.g. dist", "empty")
	}
	if len(c.Image.Tags) == 0 {
		return bad("image.tags", "list at least one tag, e.g. [latest]", "empty")
	}
	for _, t := range c.Image.Tags {
		if !tagRE.MatchString(t) {
			return bad("image.tags", "tags are letters, digits, '_', '.', '-' (at most 128, not starting with . or -)", "%q is not a valid tag", t)
		}
	}
	if e := c.Image.Entrypoint; !path.IsAbs(e) || path.Clean(e) != e || e == "/" {
		return bad("image.entrypoint", "use a clean absolute file path, e.g. /app", "%q is not an absolute file path", e)
	}
	if c.Image.User != "" && !userRE.MatchString(c.Image.User) {
		return bad("image.user", `use uid[:gid] or a user name, e.g. "65532:65532"`, "%q is not a user", c.Image.User)
	}
	if w := c.Image.Workdir; w != "" && (!path.IsAbs(w) || path.Clean(w) != w) {
		return bad("image.workdir", "use a clean absolute path, e.g. /home/nonroot", "%q is not an absolute path", w)
	}
	if err := checkEnv(bad, "image.env", c.Image.Env, false); err != nil {
		return err
	}
	for k := range c.Image.Labels {
		if strings.TrimSpace(k) == "" {
			return bad("image.labels", "give every label a key", "a label has an empty key")
		}
	}

	if len(c.Platforms) == 0 {
		return bad("platforms", "list at least one, e.g. [linux/amd64]", "empty")
	}
	seen := map[string]bool{}
	for _, p := range c.Platforms {
		pl, err := ParsePlatform(p)
		if err != nil {
			return bad("platforms", "use linux/amd64, linux/arm64, linux/arm/v7, linux/386, linux/ppc64le, linux/s390x or linux/riscv64", "%v", err)
		}
		if seen[pl.String()] {
			return bad("platforms", "list each platform once", "%s is listed twice", pl)
		}
		seen[pl.String()] = true
	}

	if err := c.Verify.check(bad, "verify"); err != nil {
		return err
	}
	if c.Sign.Key != "" && c.Sign.Keyless {
		return bad("sign.keyless", "use either sign.key or sign.keyless: true", "a key and keyless signing are both set")
	}
	for _, a := range c.Sign.Attest {
		if a != "sbom" && a != "verification" {
			return bad("sign.attest", "use sbom and/or verification", "unknown attestation %q", a)
		}
	}

	if len(c.Targets) == 0 {
		return bad("targets", "add a target, e.g. targets: {static: {libc: none, base: scratch}}", "no targets")
	}
	var defaults []string
	for _, n := range c.TargetNames() {
		t := c.Targets[n]
		key := "targets." + n
		if !nameRE.MatchString(n) {
			return bad(key, "use lowercase letters, digits, '.', '_' and '-'", "%q is not a valid target name", n)
		}
		for _, tag := range c.Image.Tags {
			if len(tag)+1+len(n) > 128 {
				return bad(key, "shorten the target name or the tag", "tag %q is longer than 128 characters", tag+"-"+n)
			}
		}
		if t == nil {
			return bad(key, "give the target libc and base", "empty target")
		}
		switch Libc(t.Libc) {
		case LibcNone, LibcGlibc, LibcMusl:
		case "":
			return bad(key+".libc", "set libc: none (static), glibc or musl", "missing")
		default:
			return bad(key+".libc", "use one of none, glibc, musl", "unknown libc %q", t.Libc)
		}
		if t.Base == "" {
			return bad(key+".base", "set base to scratch, a registry reference with @sha256:…, or oci:<layout>@sha256:…", "missing")
		}
		b, err := ParseBase(t.Base)
		if err != nil {
			return bad(key+".base", "write scratch, host/repo[:tag]@sha256:<64 hex>, or oci:<path>[:<name>]@sha256:<64 hex>", "%v", err)
		}
		if !b.Pinned() {
			return bad(key+".base", "run `kiln lock` to resolve it and pin the digest in this file", "%q is not pinned by digest; a tag can change under you", t.Base)
		}
		if t.CC != "" && strings.TrimSpace(t.CC) == "" {
			return bad(key+".cc", "name a C compiler, e.g. cc: musl-gcc, or remove cc", "blank")
		}
		for _, tp := range t.Platforms {
			if !slices.Contains(c.Platforms, tp) {
				return bad(key+".platforms", "list only platforms from the top-level platforms ("+strings.Join(c.Platforms, ", ")+")", "%q is not in platforms", tp)
			}
		}
		if err := t.Verify.check(bad, key+".verify"); err != nil {
			return err
		}
		if err := checkEnv(bad, key+".env", t.Env, true); err != nil {
			return err
		}
		if t.Default {
			defaults = append(defaults, n)
		}
	}
	if len(defaults) > 1 {
		return bad("targets."+defaults[1]+".default", "mark only one target default: true", "targets %s are all marked default", strings.Join(defaults, ", "))
	}
	return nil
}

func checkEnv(bad func(key, fix, format string, args ...any) error, key string, env []string, build bool) error {
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRE.MatchString(k) {
			return bad(key, "write each entry as KEY=VALUE", "%q is not KEY=VALUE", kv)
		}
		if build && slices.Contains(kilnOwnedEnv, k) {
			return bad(key, "choose it with the target's libc and the platforms list", "%s is set by kiln from the target and platform", k)
		}
	}
	return nil
}
