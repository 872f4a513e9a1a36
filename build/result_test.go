package build

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// release.json says its schema; --merge reads its own and older files and
// refuses a newer one with the fix, instead of misreading it.
func TestReadResultsChecksTheSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	res := newResult("hello")
	res.Rows = []*RowResult{{Target: "static", Platform: "linux/amd64", Status: StatusOK}}
	current := filepath.Join(dir, "current.json")
	if err := res.WriteJSON(current); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(current)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "{\n  \"schemaVersion\": 1,") {
		t.Errorf("release.json does not start with its schemaVersion:\n%.80s", b)
	}
	older := filepath.Join(dir, "older.json")
	newer := filepath.Join(dir, "newer.json")
	if err := os.WriteFile(older, []byte(`{"app": "hello", "targets": [{"target": "scratch", "platform": "linux/amd64", "status": "ok"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newer, []byte(strings.Replace(string(b), `"schemaVersion": 1`, `"schemaVersion": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadResults([]string{current, older})
	if err != nil || len(rows) != 2 {
		t.Fatalf("ReadResults(current, older) = %d rows, %v", len(rows), err)
	}
	_, err = ReadResults([]string{current, newer})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Input != newer || !strings.Contains(err.Error(), "schemaVersion 2 is newer than this kiln reads (1)") {
		t.Fatalf("ReadResults of a newer schema: %v", err)
	}
}
