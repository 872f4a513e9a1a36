package layoutdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLayout(tmp string) error {
	return os.WriteFile(filepath.Join(tmp, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func TestReplaceSwapsLayouts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "oci")
	for i := 0; i < 2; i++ {
		if err := Replace(dir, writeLayout); err != nil {
			t.Fatalf("replace %d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".kiln-layout-*")); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
}

// A mistyped destination must not cost anyone a file.
func TestReplaceRefuses(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "notes.txt")
	foreign := filepath.Join(parent, "src")
	for _, p := range []string{file, filepath.Join(foreign, "main.go")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{file, foreign, ".", "/", filepath.Join(foreign, "..")} {
		if err := Replace(dir, writeLayout); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
			t.Errorf("Replace(%q): got %v, want a refusal", dir, err)
		}
	}
	for _, p := range []string{file, filepath.Join(foreign, "main.go")} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "keep" {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
}
