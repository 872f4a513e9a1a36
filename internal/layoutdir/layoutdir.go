// Package layoutdir replaces an OCI image layout directory all at once: the
// new one is written beside it and swapped in only when complete, so a
// failure leaves the previous layout (or none), never a half-written one.
package layoutdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Replace calls write with a fresh temporary directory beside dir, then
// puts that directory in dir's place. It refuses to replace a non-empty
// directory that is not an OCI image layout (a mistyped output path must not
// delete someone's files).
func Replace(dir string, write func(tmp string) error) error {
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, ".kiln-layout-")
	if err != nil {
		return fmt.Errorf("creating a temporary layout in %s: %w", parent, err)
	}
	defer os.RemoveAll(tmp)
	if err := write(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + "-old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("moving the previous layout aside: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		return fmt.Errorf("moving the new layout into place: %w", err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// checkReplaceable refuses destinations whose replacement could hurt: the
// current or root directory, a file, and a directory with other content.
func checkReplaceable(dir string) error {
	if d := filepath.Clean(dir); d == "." || d == string(filepath.Separator) || filepath.Base(d) == ".." {
		return fmt.Errorf("refusing to replace %q with an OCI layout: name a dedicated directory", dir)
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("refusing to replace %s with an OCI layout: %w", dir, err)
	case len(ents) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("%s exists and is not an OCI image layout; refusing to replace it", dir)
	}
	return nil
}
