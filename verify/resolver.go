package verify

import (
	"strconv"
	"strings"
	"syscall"
)

// Resolver predictions.
const (
	ResolverGo   = "go"
	ResolverCgo  = "cgo"
	ResolverNone = "none" // the binary does not link the resolver
)

// Prediction is which resolver Go will pick in an image, and why.
type Prediction struct {
	Resolver string // go, cgo or none
	// Order is net's hostLookupOrder for the name: "cgo", "files,dns",
	// "dns,files", "files" or "dns"; "" when the resolver is not linked.
	Order  string
	Reason string
	Rule   string // the rule's source: "net/conf.go, go1.26"
	Known  bool   // false: the binary's Go release is not one kiln has rules for (see Rule)
}

// PredictResolver is net's hostLookupOrder for an ordinary host name (not
// the machine's own name) in a process of the image running as root in
// "/" with env, by the rules of the Go release that built the binary.
func PredictResolver(g *GoInfo, env []string, fsys *FS) Prediction {
	return predictResolver(g, newProc(fsys, env), "kiln-verify.test")
}

// predictResolver follows net/conf.go (initConfVal, lookupOrder), nss.go
// and dnsconfig_unix.go of the binary's release for a lookup of host by
// the process p: the build (cgo, netgo/netcgo tags), GODEBUG from p's
// environment over the compiled-in defaults, LOCALDOMAIN, RES_OPTIONS and
// HOSTALIASES, and /etc/resolv.conf, /etc/nsswitch.conf and
// /etc/mdns.allow as p can read them.
func predictResolver(g *GoInfo, p *proc, host string) Prediction {
	r := rulesFor(g.GoVersion)
	pred := func(order, reason string) Prediction {
		res := ResolverGo
		if order == "cgo" {
			res = ResolverCgo
		}
		return Prediction{Resolver: res, Order: order, Reason: reason, Rule: r.source("net/conf.go"), Known: r.known}
	}
	if g.HasFuncTable && !g.UsesNet {
		return Prediction{Resolver: ResolverNone, Reason: "the binary does not link net's resolver", Rule: r.source("net/conf.go"), Known: r.known}
	}
	netgoTag, netcgoTag := g.HasTag("netgo"), g.HasTag("netcgo")
	// cgo_unix.go builds with !netgo && cgo: only then is libc's resolver
	// compiled in.
	cgoAvailable := g.CgoEnabled && !netgoTag
	env, _ := p.getenv("GODEBUG")
	setting, _ := godebugValue(g.DefaultDebug, env, "netdns")
	mode := netdnsMode(setting)
	netGo := netgoTag || mode == "go"
	netCgo := netcgoTag || mode == "cgo"

	// lookupOrder: whether libc may be used at all, and the order to fall
	// back on when something is not understood.
	canUseCgo, fallback := false, "files,dns"
	var why string
	switch {
	case !cgoAvailable:
		why = "built with CGO_ENABLED=0"
		if netgoTag {
			why = "built with the netgo tag"
		}
		why += ": only the Go resolver is compiled in"
	case netGo:
		why = "GODEBUG netdns=go forces the Go resolver"
	case netCgo:
		if netcgoTag {
			return pred("cgo", "built with the netcgo tag")
		}
		return pred("cgo", "GODEBUG netdns=cgo forces the cgo resolver")
	default:
		// initConfVal's preferCgo: LOCALDOMAIN set at all, RES_OPTIONS or
		// HOSTALIASES set to something.
		if _, ok := p.getenv("LOCALDOMAIN"); ok {
			return pred("cgo", "LOCALDOMAIN is set in the image environment")
		}
		for _, k := range []string{"RES_OPTIONS", "HOSTALIASES"} {
			if v, _ := p.getenv(k); v != "" {
				return pred("cgo", k+" is set in the image environment")
			}
		}
		if strings.ContainsAny(host, `\%`) {
			return pred("cgo", "the name has a backslash or '%'")
		}
		canUseCgo, fallback = true, "cgo"
	}
	decide := func(order, reason string) Prediction {
		if why != "" {
			reason = why + "; " + reason
		}
		return pred(order, reason)
	}

	conf := readResolvConf(p)
	if canUseCgo && conf.err != nil && !isNotExist(conf.err) && !isPermission(conf.err) {
		return decide("cgo", "/etc/resolv.conf cannot be read ("+conf.err.Error()+"), so it is left to libc")
	}
	if canUseCgo && conf.unknown != "" {
		return decide("cgo", "/etc/resolv.conf has "+conf.unknown+", which the Go resolver does not know")
	}

	host = strings.TrimSuffix(host, ".")
	if r.localFirst && canUseCgo && hasSuffixFold(host, ".local") {
		return decide("cgo", "*.local names go to libc ("+r.release+")")
	}

	nss := readNSSwitch(p)
	hosts := nss.sources["hosts"]
	switch {
	case nss.err == syscall.ENOENT:
		return decide("files,dns", "no /etc/nsswitch.conf: Go reads /etc/hosts, then DNS")
	case nss.err == nil && len(hosts) == 0:
		return decide("files,dns", "/etc/nsswitch.conf has no hosts sources: Go reads /etc/hosts, then DNS")
	case nss.err != nil:
		if canUseCgo {
			return decide(fallback, "/etc/nsswitch.conf cannot be used ("+nss.err.Error()+"), so it is left to libc")
		}
		return decide(fallback, "/etc/nsswitch.conf cannot be used ("+nss.err.Error()+")")
	}
	line := "hosts:"
	for _, h := range hosts {
		line += " " + h.name
	}
	files, dns, hasDNS, checkedDNS := false, false, false, false
	first := ""
	for i, src := range hosts {
		if src.name == "files" || src.name == "dns" {
			if canUseCgo && !src.standardCriteria() {
				return decide("cgo", "/etc/nsswitch.conf "+line+": criteria on "+src.name+" other than the defaults are left to libc")
			}
			if src.name == "files" {
				files = true
			} else {
				dns, hasDNS, checkedDNS = true, true, true
			}
			if first == "" {
				first = src.name
			}
			continue
		}
		if canUseCgo {
			switch {
			case src.name == "myhostname":
				// Only the machine's own names go to libc.
				continue
			case strings.HasPrefix(src.name, "mdns"):
				if hasSuffixFold(host, ".local") {
					return decide("cgo", "/etc/nsswitch.conf "+line+": *.local names with "+src.name+" go to libc")
				}
				_, err := p.stat("/etc/mdns.allow")
				switch {
				case err != nil && err != syscall.ENOENT:
					return decide("cgo", "/etc/nsswitch.conf "+line+": /etc/mdns.allow cannot be checked ("+err.Error()+")")
				case err == nil:
					return decide("cgo", "/etc/nsswitch.conf "+line+": "+src.name+" with /etc/mdns.allow is left to libc")
				}
				continue
			default:
				return decide("cgo", "/etc/nsswitch.conf "+line+": source "+src.name+" only libc can use")
			}
		}
		// A source the Go resolver cannot use counts as dns, unless dns
		// is listed anyway.
		if !checkedDNS {
			checkedDNS = true
			for _, v := range hosts[i+1:] {
				if v.name == "dns" {
					hasDNS = true
					break
				}
			}
		}
		if !hasDNS {
			dns = true
			if first == "" {
				first = "dns"
			}
		}
	}
	switch {
	case files && dns && first == "files":
		return decide("files,dns", "/etc/nsswitch.conf "+line+": Go handles it itself")
	case files && dns:
		return decide("dns,files", "/etc/nsswitch.conf "+line+": Go handles it itself")
	case files:
		return decide("files", "/etc/nsswitch.conf "+line+": Go handles it itself")
	case dns:
		return decide("dns", "/etc/nsswitch.conf "+line+": Go handles it itself")
	}
	if canUseCgo {
		return decide(fallback, "/etc/nsswitch.conf "+line+": neither files nor dns, so it is left to libc")
	}
	return decide(fallback, "/etc/nsswitch.conf "+line+": neither files nor dns")
}

// confLines splits a file into lines the way net's file.readLine does:
// through a 64 KiB buffer, so that a line that does not fit ends the file
// there, and the last line needs no newline.
func confLines(data []byte) []string {
	const bufSize = 64 << 10
	var lines []string
	buf := make([]byte, 0, bufSize)
	atEOF := false
	next := func() (string, bool) {
		if i := indexNL(buf); i >= 0 {
			s := string(buf[:i])
			buf = append(buf[:0], buf[i+1:]...)
			return s, true
		}
		if atEOF && len(buf) > 0 {
			s := string(buf)
			buf = buf[:0]
			return s, true
		}
		return "", false
	}
	for {
		if s, ok := next(); ok {
			lines = append(lines, s)
			continue
		}
		if len(buf) < cap(buf) {
			n := copy(buf[len(buf):cap(buf)], data)
			buf, data = buf[:len(buf)+n], data[n:]
			if len(buf) < cap(buf) {
				atEOF = true // io.ReadFull came up short
			}
		}
		s, ok := next()
		if !ok {
			return lines
		}
		lines = append(lines, s)
	}
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// readConf reads a configuration file as net's open and readLine do: an
// error only when it cannot be opened; a directory opens and reads as
// nothing.
func readConf(p *proc, name string) ([]string, error) {
	e, err := p.open(name)
	if err != nil {
		return nil, err
	}
	if e.Type != TypeFile {
		return nil, nil
	}
	data, err := p.content(e)
	if err != nil {
		return nil, nil
	}
	return confLines(data), nil
}

// resolvConf is what net's dnsReadConfig learns that decides the
// resolver: whether the file could be opened, and the first line or
// option it does not know.
type resolvConf struct {
	err     error
	unknown string
}

// readResolvConf follows dnsReadConfig: a comment is a line starting with
// ';' or '#' (not one that follows a field), fields are split at spaces,
// tabs, CRs and newlines only, and any keyword or option it does not list
// is unknown.
func readResolvConf(p *proc) resolvConf {
	lines, err := readConf(p, "/etc/resolv.conf")
	if err != nil {
		return resolvConf{err: err}
	}
	for _, line := range lines {
		if len(line) > 0 && (line[0] == ';' || line[0] == '#') {
			continue
		}
		f := splitAny(line, " \r\t\n")
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
					return resolvConf{unknown: "options " + quoteField(o)}
				}
			}
		default:
			return resolvConf{unknown: "the keyword " + quoteField(f[0])}
		}
	}
	return resolvConf{}
}

// quoteField quotes a field for evidence when it holds bytes a reader
// would not see.
func quoteField(s string) string {
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return strconv.Quote(s)
		}
	}
	return s
}

// splitAny splits s at any byte of seps, dropping empty fields.
func splitAny(s, seps string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || strings.IndexByte(seps, s[i]) >= 0 {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return out
}

// nssConf is nsswitch.conf as net reads it: the sources of each database,
// or why the file cannot be used.
type nssConf struct {
	err     error
	sources map[string][]nssSource
}

// nssSource is one source of an nsswitch.conf line with its [criteria].
type nssSource struct {
	name     string
	criteria []string // lowercased "status=action", "!status=action"
}

// readNSSwitch follows net/nss.go: '#' starts a comment anywhere, a line
// is trimmed of spaces, tabs, CRs and newlines, a non-empty line without
// a colon makes the whole file unusable, sources are separated by spaces
// only, a "[...]" group after a source holds its criteria, and lines for
// the same database add up.
func readNSSwitch(p *proc) nssConf {
	lines, err := readConf(p, "/etc/nsswitch.conf")
	if err != nil {
		return nssConf{err: err}
	}
	conf := nssConf{sources: map[string][]nssSource{}}
	for _, line := range lines {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = trimNetSpace(line)
		if line == "" {
			continue
		}
		db, srcs, ok := strings.Cut(line, ":")
		if !ok {
			return nssConf{err: errNSS("a line has no colon")}
		}
		db = trimNetSpace(db)
		for {
			srcs = trimNetSpace(srcs)
			if srcs == "" {
				break
			}
			name, rest, _ := strings.Cut(srcs, " ")
			srcs = trimNetSpace(rest)
			s := nssSource{name: name}
			if strings.HasPrefix(srcs, "[") {
				end := strings.IndexByte(srcs, ']')
				if end < 0 {
					return nssConf{err: errNSS("unclosed criterion bracket")}
				}
				crit, ok := parseCriteria(srcs[1:end])
				if !ok {
					return nssConf{err: errNSS("invalid criteria: " + srcs[1:end])}
				}
				s.criteria = crit
				srcs = srcs[end+1:]
			}
			conf.sources[db] = append(conf.sources[db], s)
		}
	}
	return conf
}

type errNSS string

func (e errNSS) Error() string { return string(e) }

// parseCriteria splits "a=b !c=d" at spaces (fields trimmed of spaces,
// tabs, CRs and newlines, as net's foreachField does); each must be at
// least three bytes after an optional '!' and hold '='.
func parseCriteria(x string) ([]string, bool) {
	var out []string
	x = trimNetSpace(x)
	for x != "" {
		f, rest, _ := strings.Cut(x, " ")
		x = trimNetSpace(rest)
		f = trimNetSpace(f)
		if f == "" {
			continue
		}
		if len(strings.TrimPrefix(f, "!")) < 3 || !strings.Contains(f, "=") {
			return nil, false
		}
		out = append(out, lowerASCII(f))
	}
	return out, true
}

// trimNetSpace trims ASCII spaces, tabs, CRs and newlines, as net's
// trimSpace does (strings.TrimSpace also trims \v, \f and Unicode space).
func trimNetSpace(s string) string { return strings.Trim(s, " \t\r\n") }

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

// hasSuffixFold is net's stringsHasSuffixFold: ASCII case-insensitive
// (strings.EqualFold would also fold Unicode).
func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && lowerASCII(s[len(s)-len(suffix):]) == lowerASCII(suffix)
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// envLookup is getenv: the first KEY= entry. A runtime passes the image's
// environment with one entry per name (see runtimeEnv), so which one
// wins only matters for environments that never reached a runtime.
func envLookup(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func envValue(env []string, key string) string {
	v, _ := envLookup(env, key)
	return v
}

// runtimeEnv is the environment a runtime gives the process for an image
// config's Env: umoci, containerd and moby keep one entry per name, at
// the place of its first occurrence, with the value of its last.
func runtimeEnv(env []string) []string {
	out := make([]string, 0, len(env))
	at := map[string]int{}
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			out = append(out, kv)
			continue
		}
		if i, seen := at[k]; seen {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}
