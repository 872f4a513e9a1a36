package verify

import "strings"

// godebugValue is the value a Go program sees for one GODEBUG setting, by
// the rules of internal/godebug (go1.21–go1.26): the environment's GODEBUG
// is read before the compiled-in defaults (DefaultGODEBUG in build info),
// so a key the environment sets, even to "", wins; within one string the
// last "key=value" wins; keys are compared byte for byte (" netdns" is
// another key), a value ends at its first '#' (a bisect pattern follows),
// and an element without '=' is ignored. The second result says whether
// either string set the key.
func godebugValue(defaults, env, key string) (string, bool) {
	for _, s := range []string{env, defaults} {
		if v, ok := lastSetting(s, key); ok {
			return v, true
		}
	}
	return "", false
}

// lastSetting finds the last "key=value" element of a comma-separated
// GODEBUG string. The key is what precedes the element's first '='.
func lastSetting(s, key string) (string, bool) {
	for s != "" {
		i := strings.LastIndexByte(s, ',')
		elem := s[i+1:]
		if i < 0 {
			s = ""
		} else {
			s = s[:i]
		}
		k, v, ok := strings.Cut(elem, "=")
		if !ok || k != key {
			continue
		}
		v, _, _ = strings.Cut(v, "#")
		return v, true
	}
	return "", false
}

// netdnsMode splits the netdns setting the way net's goDebugNetDNS does:
// at its first '+' into two parts, each a debug level when it starts with
// a digit and a mode otherwise (the later part wins). A mode other than
// "go" or "cgo" is ignored by net, and returned as "" here.
func netdnsMode(value string) string {
	mode := ""
	parts := []string{value}
	if a, b, ok := strings.Cut(value, "+"); ok {
		parts = []string{a, b}
	}
	for _, p := range parts {
		if p != "" && (p[0] < '0' || p[0] > '9') {
			mode = p
		}
	}
	if mode != "go" && mode != "cgo" {
		return ""
	}
	return mode
}
