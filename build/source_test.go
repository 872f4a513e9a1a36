package build

import "testing"

func TestSourceURL(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		// scp-style and SSH remotes become the https page of the same repository.
		{"git@github.com:o/r.git", "https://github.com/o/r"},
		{"git@github.com:o/r", "https://github.com/o/r"},
		{"github.com:o/r.git", "https://github.com/o/r"},
		{"git@gitlab.example.com:group/sub/r.git", "https://gitlab.example.com/group/sub/r"},
		{"git@github.com:/o/r.git/", "https://github.com/o/r"},
		{"ssh://git@github.com/o/r.git", "https://github.com/o/r"},
		{"ssh://git@git.example.com:2222/o/r.git", "https://git.example.com/o/r"},
		{"git+ssh://git@github.com/o/r.git", "https://github.com/o/r"},
		{"git://github.com/o/r.git", "https://github.com/o/r"},
		{"SSH://git@GitHub.com/O/r.git", "https://github.com/O/r"},
		// Credentials, queries and fragments never reach a public label.
		{"https://x-access-token:ghs_secret@github.com/o/r.git", "https://github.com/o/r"},
		{"https://user@github.com/o/r", "https://github.com/o/r"},
		{"https://oauth2:tok@en@gitlab.com/o/r.git", "https://gitlab.com/o/r"},
		{"https://github.com/o/r.git?x=1#frag", "https://github.com/o/r"},
		{"https://github.com/o/r/", "https://github.com/o/r"},
		// http(s) keeps its scheme and port.
		{"http://git.internal:8080/o/r.git", "http://git.internal:8080/o/r"},
		{"https://github.com/o/r", "https://github.com/o/r"},
		// Local paths and transports without a web page: no source.
		{"", ""},
		{"/srv/git/r.git", ""},
		{"../r.git", ""},
		{"./dir:with/colon", ""},
		{"file:///srv/git/r.git", ""},
		{"ext::ssh -i key host %S r", ""},
		{"https://", ""},
		{":o/r", ""},
	} {
		if got := sourceURL(tc.remote); got != tc.want {
			t.Errorf("sourceURL(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
