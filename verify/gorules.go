package verify

import (
	"fmt"
	"strconv"
	"strings"
)

// goRules are the rules of one Go release for what kiln predicts about a
// binary it built: how net picks a resolver (net/conf.go, nss.go,
// dnsconfig_unix.go, internal/godebug) and where crypto/x509 looks for CA
// roots (root_linux.go, root_unix.go). Which release applies is read from
// the binary's build info: these files changed across releases, and a
// prediction made with another release's rules is a guess.
//
// Every release in the table was read from its own src/ (the toolchains
// GOTOOLCHAIN fetches into the module cache) and is held to the real
// component by the differential tests (*_diff_test.go), which run probes
// built with several of these toolchains.
type goRules struct {
	release string // "go1.22": whose sources the rules follow
	known   bool   // false: the binary's release is not in the table and release is the nearest one that is

	// localFirst: go1.21 and go1.22 send any *.local name to cgo before
	// reading nsswitch.conf; from go1.23 only when a mdns source is listed.
	localFirst bool
	// certDirs is root_linux.go's certDirectories: go1.21 also reads
	// Android's /system/etc/security/cacerts on Linux.
	certDirs []string
}

// The oldest and newest minor releases whose rules kiln knows.
const (
	oldestRules = 21
	newestRules = 26
)

// certFiles is root_linux.go's certFiles, the same in every known release.
var certFiles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// rulesFor returns the rules of the Go release that built a binary, from
// its build info's version ("go1.22.12", "go1.26rc1", "devel go1.27-…").
// A release kiln has no rules for gets the nearest known release's rules
// with known false, so that a check can say so instead of guessing
// silently.
func rulesFor(goVersion string) goRules {
	minor, ok := goMinor(goVersion)
	r := goRules{known: ok && minor >= oldestRules && minor <= newestRules}
	switch {
	case !ok || minor > newestRules:
		minor = newestRules
	case minor < oldestRules:
		minor = oldestRules
	}
	r.release = fmt.Sprintf("go1.%d", minor)
	r.localFirst = minor <= 22
	r.certDirs = []string{"/etc/ssl/certs", "/etc/pki/tls/certs"}
	if minor == 21 {
		r.certDirs = append(r.certDirs, "/system/etc/security/cacerts")
	}
	return r
}

// goMinor reads the minor release from a Go version string. Development
// builds ("devel go1.27-abc…") count as the release they lead to, but
// rulesFor still marks them unknown: their sources are not a release's.
func goMinor(v string) (int, bool) {
	devel := strings.HasPrefix(v, "devel ")
	v = strings.TrimPrefix(strings.TrimPrefix(v, "devel "), "go")
	major, rest, ok := strings.Cut(v, ".")
	if !ok || major != "1" {
		return 0, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil || devel {
		return n, false
	}
	return n, true
}

// source names a rule's origin for a check's evidence: the file of Go's
// source tree and the release whose rules were applied, flagged when the
// binary's own release is not one kiln knows.
func (r goRules) source(file string) string {
	if !r.known {
		return fmt.Sprintf("%s, %s rules: kiln knows go1.%d–go1.%d only", file, r.release, oldestRules, newestRules)
	}
	return file + ", " + r.release
}

// unknownNote is what a check says when the binary's release is not in
// the table: the verdict is then a warning, never a silent pass or fail.
func (r goRules) unknownNote(goVersion string) string {
	return fmt.Sprintf("the binary was built with %s, whose rules kiln does not know (it knows go1.%d–go1.%d); predicted with %s's", orUnknown(goVersion), oldestRules, newestRules, r.release)
}
