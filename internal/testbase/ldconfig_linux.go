package testbase

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// hostLDConfig returns the ld.so.cache that the host's ldconfig builds
// for fs, read from fs's own /etc/ld.so.conf. ldconfig -r chroots, so
// when not root it runs as root of a new user namespace.
func hostLDConfig(fs rootfs) ([]byte, error) {
	ldconfig, err := findLDConfig()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "kiln-testbase-ldconfig-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	if err := fs.materialize(root); err != nil {
		return nil, fmt.Errorf("preparing a root for ldconfig: %w", err)
	}

	// -X: the libraries are already installed under their sonames, and
	// ldconfig must not add links that the image would not have.
	cmd := exec.Command(ldconfig, "-X", "-r", root)
	cmd.Env = []string{"LC_ALL=C"}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("running %s -X -r <rootfs>: %w\n%s", ldconfig, err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc", "ld.so.cache"))
	if err != nil {
		return nil, fmt.Errorf("reading the cache ldconfig wrote: %w", err)
	}
	return b, nil
}

func findLDConfig() (string, error) {
	if p, err := exec.LookPath("ldconfig"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ldconfig", "/sbin/ldconfig"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", &MissingHostFileError{Path: "/usr/sbin/ldconfig", Package: "libc-bin"}
}
