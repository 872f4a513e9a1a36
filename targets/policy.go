package targets

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy is what verification demands of one target's images: the verify
// block of the config with the target's own block over it, defaults filled in.
type Policy struct {
	Resolver   string        // go, cgo or any
	Run        bool          // run.start and run.resolver execute the binary
	Args       []string      // smoke arguments for run.start
	LookupArgs []string      // arguments that make the binary resolve {name}; empty: run.resolver is skipped
	ExpectExit int           // the exit code run.start expects
	RunTimeout time.Duration // a run still going at this point is a server that started
	DNSLoad    int           // concurrent lookups inside the image; 0 = off
	Require    []string      // certs, tzdata, nonroot: required even when the binary does not need them
}

// Requirements verify.require may name.
var requirements = []string{"certs", "tzdata", "nonroot"}

// Resolver values verify.resolver may take.
var resolvers = []string{"go", "cgo", "any"}

// DefaultPolicy is SPEC §3's defaults for what the file leaves out.
func DefaultPolicy() Policy {
	return Policy{Resolver: "any", Run: true, RunTimeout: 2 * time.Second}
}

// Requires reports whether the policy requires what.
func (p Policy) Requires(what string) bool { return slices.Contains(p.Require, what) }

// Apply overlays the keys v sets on p. v was validated by Decode.
func (v VerifyConfig) Apply(p Policy) Policy {
	if v.Resolver != nil {
		p.Resolver = *v.Resolver
	}
	if v.Run != nil {
		p.Run = *v.Run
	}
	if v.Args != nil {
		p.Args = v.Args
	}
	if v.LookupArgs != nil {
		p.LookupArgs = v.LookupArgs
	}
	if v.ExpectExit != nil {
		p.ExpectExit = *v.ExpectExit
	}
	if v.RunTimeout != nil {
		p.RunTimeout, _ = time.ParseDuration(*v.RunTimeout)
	}
	if v.DNSLoad != nil {
		p.DNSLoad = *v.DNSLoad
	}
	if v.Require != nil {
		p.Require = v.Require
	}
	return p
}

// Check validates a verify block given outside a config file (kiln
// verify's flags) by the rules of the config's verify block. The error is a
// *ConfigError whose Key is the block's own key (resolver, run_timeout, …).
func (v VerifyConfig) Check() error {
	return v.check(func(key, fix, format string, args ...any) error {
		return &ConfigError{Key: strings.TrimPrefix(key, "."), Problem: fmt.Sprintf(format, args...), Fix: fix}
	}, "")
}

// check validates a verify block; key is its dotted path.
func (v VerifyConfig) check(bad func(key, fix, format string, args ...any) error, key string) error {
	if v.Resolver != nil && !slices.Contains(resolvers, *v.Resolver) {
		return bad(key+".resolver", "use go, cgo or any", "unknown resolver %q", *v.Resolver)
	}
	for _, r := range v.Require {
		if !slices.Contains(requirements, r) {
			return bad(key+".require", "use any of "+strings.Join(requirements, ", "), "unknown requirement %q", r)
		}
	}
	if v.RunTimeout != nil {
		d, err := time.ParseDuration(*v.RunTimeout)
		if err != nil || d <= 0 || d > 5*time.Minute {
			return bad(key+".run_timeout", "use a duration between 1ms and 5m, e.g. 2s", "%q is not a usable timeout", *v.RunTimeout)
		}
	}
	if v.ExpectExit != nil && (*v.ExpectExit < 0 || *v.ExpectExit > 255) {
		return bad(key+".expect_exit", "use an exit code from 0 to 255", "%d is not an exit code", *v.ExpectExit)
	}
	if v.DNSLoad != nil && (*v.DNSLoad < 0 || *v.DNSLoad > 10000) {
		return bad(key+".dns_load", "use 0 (off) to 10000 lookups", "%d lookups is out of range", *v.DNSLoad)
	}
	if len(v.LookupArgs) > 0 && !slices.ContainsFunc(v.LookupArgs, func(a string) bool { return strings.Contains(a, "{name}") }) {
		return bad(key+".lookup_args", fmt.Sprintf("put {name} where the binary takes the name to resolve, e.g. [%s, {name}]", v.LookupArgs[0]), "no argument contains {name}")
	}
	return nil
}
