package build

import (
	"net/url"
	"strings"
)

// sourceURL is the org.opencontainers.image.source recorded for a git
// remote: a URL a person and a tool can open (GitHub's package page,
// Renovate's changelog lookup), never a secret. An SSH or scp-style remote
// (git@github.com:o/r.git, ssh://git@host:22/o/r) becomes https on the same
// host, credentials, query and a trailing .git are dropped, http(s) keeps
// its scheme and port. A local path, file:// or a transport kiln cannot
// name a web page for gives "": no source rather than a host path.
func sourceURL(remote string) string {
	remote = strings.TrimSpace(remote)
	if remote == "" || strings.Contains(remote, "::") { // <transport>::<address>: a remote helper
		return ""
	}
	if !strings.Contains(remote, "://") {
		// scp-like syntax, as git reads it: [user@]host:path, a colon
		// before any slash; anything else is a local path.
		colon, slash := strings.Index(remote, ":"), strings.Index(remote, "/")
		if colon <= 0 || (slash >= 0 && slash < colon) {
			return ""
		}
		host := remote[:colon]
		if at := strings.LastIndex(host, "@"); at >= 0 {
			host = host[at+1:]
		}
		remote = "ssh://" + host + "/" + strings.TrimLeft(remote[colon+1:], "/")
	}
	u, err := url.Parse(remote)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	host := strings.ToLower(u.Host)
	switch strings.ToLower(u.Scheme) {
	case "https", "http":
		u.Scheme = strings.ToLower(u.Scheme)
	case "ssh", "git", "git+ssh", "ssh+git":
		u.Scheme = "https"
		if p := u.Port(); p != "" { // the SSH or git daemon's port, not the web server's
			host = strings.TrimSuffix(host, ":"+p)
		}
	default:
		return ""
	}
	path := strings.TrimSuffix(strings.TrimRight(u.Path, "/"), ".git")
	clean := url.URL{Scheme: u.Scheme, Host: host, Path: strings.TrimRight(path, "/")}
	return clean.String()
}
