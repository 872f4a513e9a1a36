package verify

import (
	"errors"
	"io/fs"
	"strings"
)

// Resolver predictions.
const (
	ResolverGo   = "go"
	ResolverCgo  = "cgo"
	ResolverNone = "none" // the binary does not link the resolver
)

// Prediction is which resolver Go will pick in an image, and why.
type Prediction struct {
	Resolver string
	Reason   string
}

// PredictResolver follows Go's src/net/conf.go (Go 1.26: initConfVal and
// (*conf).lookupOrder) for a Linux binary, from what is fixed when the image
// starts: the build (cgo, netgo/netcgo tags, compiled-in GODEBUG), the image
// environment (GODEBUG, LOCALDOMAIN, RES_OPTIONS, HOSTALIASES) and the
// image's /etc/nsswitch.conf and /etc/resolv.conf. It predicts the lookup
// of an ordinary host name (not the machine's own name, not *.local).
func PredictResolver(g *GoInfo, env []string, fsys *FS) Prediction {
	if g.HasFuncTable && !g.UsesNet {
		return Prediction{ResolverNone, "the binary does not link net's resolver"}
	}
	// cgoAvailable: cgo_unix.go builds with !netgo && cgo.
	netgoTag, netcgoTag := g.HasTag("netgo"), g.HasTag("netcgo")
	cgoAvailable := g.CgoEnabled && !netgoTag
	mode := netdnsMode(g.DefaultDebug, envValue(env, "GODEBUG"))
	netGo := netgoTag || mode == "go"
	netCgo := netcgoTag || mode == "cgo"

	switch {
	case !cgoAvailable:
		why := "built with CGO_ENABLED=0"
		if netgoTag {
			why = "built with the netgo tag"
		}
		return Prediction{ResolverGo, why + ": only the Go resolver is compiled in"}
	case netGo:
		return Prediction{ResolverGo, "GODEBUG netdns=go forces the Go resolver"}
	case netCgo:
		if netcgoTag {
			return Prediction{ResolverCgo, "built with the netcgo tag"}
		}
		return Prediction{ResolverCgo, "GODEBUG netdns=cgo forces the cgo resolver"}
	}
	if _, ok := envLookup(env, "LOCALDOMAIN"); ok {
		return Prediction{ResolverCgo, "LOCALDOMAIN is set in the image environment"}
	}
	for _, k := range []string{"RES_OPTIONS", "HOSTALIASES"} {
		if envValue(env, k) != "" {
			return Prediction{ResolverCgo, k + " is set in the image environment"}
		}
	}

	// resolv.conf: unreadable (other than missing) or an unknown option
	// sends the lookup to libc.
	if data, err := fsys.readShared("/etc/resolv.conf"); err == nil {
		if opt := unknownResolvOption(string(data)); opt != "" {
			return Prediction{ResolverCgo, "/etc/resolv.conf has " + opt + ", which the Go resolver does not know"}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Prediction{ResolverCgo, "/etc/resolv.conf cannot be read: " + err.Error()}
	}

	data, err := fsys.readShared("/etc/nsswitch.conf")
	if errors.Is(err, fs.ErrNotExist) {
		return Prediction{ResolverGo, "no /etc/nsswitch.conf: Go resolves files then DNS itself"}
	}
	if err != nil {
		return Prediction{ResolverCgo, "/etc/nsswitch.conf cannot be read: " + err.Error()}
	}
	nss, err := parseNSS(string(data))
	if err != nil {
		return Prediction{ResolverCgo, "/etc/nsswitch.conf cannot be parsed (" + err.Error() + "): left to libc"}
	}
	hosts := nss["hosts"]
	if len(hosts) == 0 {
		return Prediction{ResolverGo, "/etc/nsswitch.conf has no hosts sources: Go resolves files then DNS itself"}
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.name
	}
	line := "hosts: " + strings.Join(names, " ")
	filesOrDNS := false
	for _, src := range hosts {
		switch {
		case src.name == "files" || src.name == "dns":
			filesOrDNS = true
			if !src.standardCriteria() {
				return Prediction{ResolverCgo, "/etc/nsswitch.conf " + line + ": non-default criteria on " + src.name + " are left to libc"}
			}
		case src.name == "myhostname":
			// Only lookups of the machine's own name go to libc.
		case strings.HasPrefix(src.name, "mdns"):
			if _, _, err := fsys.Resolve("/etc/mdns.allow"); err == nil {
				return Prediction{ResolverCgo, "/etc/nsswitch.conf uses " + src.name + " and /etc/mdns.allow exists"}
			}
		default:
			return Prediction{ResolverCgo, "/etc/nsswitch.conf " + line + ": source " + src.name + " only libc can use"}
		}
	}
	if !filesOrDNS {
		return Prediction{ResolverCgo, "/etc/nsswitch.conf " + line + ": neither files nor dns, so the lookup is left to libc"}
	}
	return Prediction{ResolverGo, "/etc/nsswitch.conf " + line + ": Go handles it itself"}
}

// netdnsMode returns "go", "cgo" or "" from the netdns GODEBUG setting:
// the environment's value wins over the compiled-in default, and the last
// netdns= in a list wins.
func netdnsMode(defaults, env string) string {
	mode := ""
	for _, src := range []string{defaults, env} {
		found, m := false, ""
		for _, kv := range strings.Split(src, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || k != "netdns" {
				continue
			}
			found, m = true, ""
			for _, part := range strings.SplitN(v, "+", 2) {
				if part != "" && (part[0] < '0' || part[0] > '9') {
					m = part
				}
			}
		}
		if found {
			mode = m
		}
	}
	if mode != "go" && mode != "cgo" {
		return ""
	}
	return mode
}

// unknownResolvOption returns the first resolv.conf line or option that
// net/dnsconfig_unix.go does not recognise.
func unknownResolvOption(conf string) string {
	for line := range strings.SplitSeq(conf, "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver", "domain", "search", "lookup":
		case "options":
			for _, o := range f[1:] {
				switch {
				case strings.HasPrefix(o, "ndots:"), strings.HasPrefix(o, "timeout:"), strings.HasPrefix(o, "attempts:"),
					o == "rotate", o == "single-request", o == "single-request-reopen", o == "use-vc", o == "usevc",
					o == "tcp", o == "trust-ad", o == "edns0", o == "no-reload":
				default:
					return "options " + o
				}
			}
		default:
			return "the keyword " + f[0]
		}
	}
	return ""
}

// nssSource is one source of an nsswitch.conf line with its [criteria].
type nssSource struct {
	name     string
	criteria []string // lowercased "status=action", "!status=action"
}

// parseNSS reads nsswitch.conf the way net/nss.go does: '#' comments, one
// "db: sources" per line (a line without a colon makes the whole file
// unusable), sources separated by spaces, an optional "[...]" group after a
// source, and lines for the same database appended.
func parseNSS(conf string) (map[string][]nssSource, error) {
	out := map[string][]nssSource{}
	for line := range strings.SplitSeq(conf, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.Trim(line, " \t\r")
		if line == "" {
			continue
		}
		db, srcs, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errors.New("a line has no colon")
		}
		db = strings.Trim(db, " \t\r")
		for {
			srcs = strings.Trim(srcs, " \t\r")
			if srcs == "" {
				break
			}
			src := srcs
			if sp := strings.IndexByte(srcs, ' '); sp >= 0 {
				src, srcs = srcs[:sp], strings.Trim(srcs[sp+1:], " \t\r")
			} else {
				srcs = ""
			}
			s := nssSource{name: src}
			if strings.HasPrefix(srcs, "[") {
				end := strings.IndexByte(srcs, ']')
				if end < 0 {
					return nil, errors.New("unclosed criterion bracket")
				}
				for _, c := range strings.Fields(srcs[1:end]) {
					if len(strings.TrimPrefix(c, "!")) < 3 || !strings.Contains(c, "=") {
						return nil, errors.New("invalid criteria: " + srcs[1:end])
					}
					s.criteria = append(s.criteria, strings.ToLower(c))
				}
				srcs = srcs[end+1:]
			}
			out[db] = append(out[db], s)
		}
	}
	return out, nil
}

// standardCriteria reports whether a source's criteria only restate the
// defaults (net/nss.go standardStatusAction): success=return,
// notfound/unavail/tryagain=continue, and return as the last action.
func (s nssSource) standardCriteria() bool {
	for i, c := range s.criteria {
		if strings.HasPrefix(c, "!") {
			return false
		}
		status, action, _ := strings.Cut(c, "=")
		def := "continue"
		switch status {
		case "success":
			def = "return"
		case "notfound", "unavail", "tryagain":
		default:
			return false
		}
		if !(i == len(s.criteria)-1 && action == "return") && action != def {
			return false
		}
	}
	return true
}

func envLookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func envValue(env []string, key string) string {
	v, _ := envLookup(env, key)
	return v
}
