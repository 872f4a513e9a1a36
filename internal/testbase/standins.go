package testbase

import (
	"cmp"
	"fmt"
	"path"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	nonrootUID = 65532
	certsPath  = "/etc/ssl/certs/ca-certificates.crt"
	envPath    = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// The users and groups of distroless; alpine gets the same so that tests
// can run every stand-in as 65532.
const (
	etcPasswd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	etcGroup = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`
	// distroless ships Debian's base-files nsswitch.conf with files-only
	// passwd and group.
	etcNsswitch = `# /etc/nsswitch.conf (kiln stand-in, as in distroless)

passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
`
)

func osRelease(prettyName, idLike, versionID string) []byte {
	return fmt.Appendf(nil, `PRETTY_NAME="%s"
NAME="kiln stand-in"
ID=kiln-standin
ID_LIKE=%s
VERSION_ID="%s"
`, prettyName, idLike, versionID)
}

// glibcArch says where this host keeps one architecture's glibc runtime
// and where the stand-in installs it.
type glibcArch struct {
	hostDir    string // host directory of the runtime files
	libcPkg    string // Debian package of libc and the loader
	gccPkg     string // Debian package of libgcc_s
	libDir     string // directory in the image, as Debian has it
	loader     string
	loaderLink string // the PT_INTERP path, a symlink to libDir/loader
}

func glibcArchFor(goarch string) (glibcArch, error) {
	switch goarch {
	case "amd64":
		return glibcArch{
			hostDir:    "/lib/x86_64-linux-gnu",
			libcPkg:    "libc6",
			gccPkg:     "libgcc-s1",
			libDir:     "/lib/x86_64-linux-gnu",
			loader:     "ld-linux-x86-64.so.2",
			loaderLink: "/lib64/ld-linux-x86-64.so.2",
		}, nil
	case "arm64":
		return glibcArch{
			hostDir:    "/usr/aarch64-linux-gnu/lib",
			libcPkg:    "libc6-arm64-cross",
			gccPkg:     "libgcc-s1-arm64-cross",
			libDir:     "/lib/aarch64-linux-gnu",
			loader:     "ld-linux-aarch64.so.1",
			loaderLink: "/lib/ld-linux-aarch64.so.1",
		}, nil
	}
	return glibcArch{}, fmt.Errorf("no glibc runtime known for %s", goarch)
}

// commonFS returns the files that every stand-in has.
func (h host) commonFS() (rootfs, error) {
	certs, err := h.read(certsPath, "ca-certificates")
	if err != nil {
		return nil, err
	}
	fs := rootfs{}
	fs.file("/etc/passwd", modeFile, []byte(etcPasswd))
	fs.file("/etc/group", modeFile, []byte(etcGroup))
	fs.file(certsPath, modeFile, certs)
	if err := h.addZoneinfo(fs); err != nil {
		return nil, err
	}
	fs.dir("/tmp", modeSticky, 0, 0)
	fs.dir("/root", 0o700, 0, 0)
	fs.dir("/home/nonroot", 0o700, nonrootUID, nonrootUID)
	return fs, nil
}

// addGlibc installs the glibc runtime of goarch with its loader link,
// ld.so.conf and ld.so.cache.
func (h host) addGlibc(fs rootfs, goarch string) error {
	a, err := glibcArchFor(goarch)
	if err != nil {
		return err
	}
	libs := []string{a.loader, "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
		"libresolv.so.2", "libnss_dns.so.2", "libnss_files.so.2", "libgcc_s.so.1"}
	var entries []ldCacheEntry
	for _, lib := range libs {
		pkg := a.libcPkg
		if lib == "libgcc_s.so.1" {
			pkg = a.gccPkg
		}
		b, err := h.read(path.Join(a.hostDir, lib), pkg)
		if err != nil {
			return err
		}
		p := path.Join(a.libDir, lib)
		e, err := ldCacheEntryFor(p, b)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		fs.file(p, modeExec, b)
	}
	fs.symlink(a.loaderLink, path.Join(a.libDir, a.loader))
	fs.file("/etc/ld.so.conf", modeFile, []byte("# kiln stand-in: directories for ldconfig\n"+a.libDir+"\n"))

	cache, err := h.ldCache(fs, goarch, entries)
	if err != nil {
		return fmt.Errorf("building /etc/ld.so.cache: %w", err)
	}
	fs.file("/etc/ld.so.cache", modeFile, cache)
	return nil
}

// ldCache builds the ld.so.cache for fs. The host's ldconfig builds the
// amd64 one; it skips libraries of foreign architectures, so the arm64
// one is written here, and has been checked against the arm64 loader
// under qemu (see TestBaseArm64Runs).
func (h host) ldCache(fs rootfs, goarch string, want []ldCacheEntry) ([]byte, error) {
	if goarch != "amd64" {
		return buildLDCache(want), nil
	}
	b, err := hostLDConfig(fs)
	if err != nil {
		return nil, err
	}
	got, err := parseLDCache(b)
	if err != nil {
		return nil, fmt.Errorf("reading the host ldconfig's cache: %w", err)
	}
	sortEntries := func(es []ldCacheEntry) []ldCacheEntry {
		return slices.SortedFunc(slices.Values(es), func(x, y ldCacheEntry) int { return cmp.Compare(x.Path, y.Path) })
	}
	if !slices.Equal(sortEntries(got), sortEntries(want)) {
		return nil, fmt.Errorf("the host ldconfig's cache lists %v, want %v", got, want)
	}
	return b, nil
}

// standIn is one top-level entry of the layout.
type standIn struct {
	name   string
	archs  []string
	config v1.Config
	rootfs func(goarch string) (rootfs, error)
}

func (h host) standIns() ([]standIn, error) {
	common, err := h.commonFS()
	if err != nil {
		return nil, err
	}
	distroless := v1.Config{Env: []string{envPath}, User: fmt.Sprint(nonrootUID), WorkingDir: "/home/nonroot"}

	distrolessFS := func(prettyName string) rootfs {
		fs := common.clone()
		fs.file("/etc/nsswitch.conf", modeFile, []byte(etcNsswitch))
		fs.file("/etc/os-release", modeFile, osRelease(prettyName, "debian", "12"))
		return fs
	}
	static := func(string) (rootfs, error) {
		return distrolessFS("kiln stand-in for distroless static-debian12"), nil
	}
	base := func(goarch string) (rootfs, error) {
		fs := distrolessFS("kiln stand-in for distroless base-debian12")
		if err := h.addGlibc(fs, goarch); err != nil {
			return nil, err
		}
		return fs, nil
	}
	alpine := func(string) (rootfs, error) {
		fs := common.clone()
		fs.file("/etc/os-release", modeFile, osRelease("kiln stand-in for Alpine Linux v3.19", "alpine", "3.19.0"))
		fs.file("/etc/alpine-release", modeFile, []byte("3.19.0 (kiln stand-in)\n"))
		musl, err := h.read("/usr/lib/x86_64-linux-musl/libc.so", "musl")
		if err != nil {
			return nil, err
		}
		fs.file("/lib/ld-musl-x86_64.so.1", modeExec, musl)
		fs.symlink("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
		busybox, err := h.read("/bin/busybox", "busybox-static")
		if err != nil {
			return nil, err
		}
		fs.file("/bin/busybox", modeExec, busybox)
		fs.symlink("/bin/sh", "busybox")
		return fs, nil
	}

	return []standIn{
		{name: "static", archs: []string{"amd64", "arm64"}, config: distroless, rootfs: static},
		{name: "base", archs: []string{"amd64", "arm64"}, config: distroless, rootfs: base},
		{name: "alpine", archs: []string{"amd64"}, config: v1.Config{Env: []string{envPath}, WorkingDir: "/"}, rootfs: alpine},
	}, nil
}
