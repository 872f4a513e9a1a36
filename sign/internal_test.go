package sign

import "testing"

func TestCheckPredicateType(t *testing.T) {
	for typ, ok := range map[string]bool{
		"spdxjson":                    true,
		"custom":                      true,
		VerificationPredicateType:     true,
		SBOMPredicateType:             true,
		"urn:example:thing":           true,
		"":                            false,
		"spdx-json":                   false,
		"not a type":                  false,
		"https://":                    false,
		"kilnbuild.dev/verification1": false,
	} {
		if err := checkPredicateType(typ); (err == nil) != ok {
			t.Errorf("checkPredicateType(%q) = %v, want ok=%v", typ, err, ok)
		}
	}
}

func TestRepoName(t *testing.T) {
	for dir, want := range map[string]string{
		"dist/signed/static":     "static",
		"dist/signed/Alpine_3":   "alpine_3",
		"/tmp/x":                 "layout",
		"/tmp/My Layout!":        "my-layout",
		"/tmp/.hidden":           "hidden",
		"/tmp/glibc-linux-arm64": "glibc-linux-arm64",
	} {
		if got := repoName(dir); got != want {
			t.Errorf("repoName(%q) = %q, want %q", dir, got, want)
		}
	}
}

func TestPurlEscape(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":              "v1.2.3",
		"v2.0.0+incompatible": "v2.0.0%2Bincompatible",
		"sha256:ab":           "sha256%3Aab",
		"a/b c":               "a%2Fb%20c",
	} {
		if got := purlEscape(in); got != want {
			t.Errorf("purlEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
