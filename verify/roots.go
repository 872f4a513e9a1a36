package verify

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// rootsFound is what crypto/x509's loadSystemRoots would load in a process
// of the image, and where from.
type rootsFound struct {
	certs    int    // distinct certificates parsed
	file     string // the file that ended the file search ("" when none could be read)
	fileN    int    // its certificates
	dir      string // the first directory that gave certificates
	firstErr error  // the first error other than "does not exist": loadSystemRoots fails with it when nothing loads
	errPath  string
	fallback string   // why the embedded fallback roots are used instead, if they are
	files    []string // the files looked at: SSL_CERT_FILE or root_linux.go's list
}

// predictRoots follows root_unix.go's loadSystemRoots with root_linux.go's
// lists of the binary's release: SSL_CERT_FILE (when not empty) replaces
// the file list, and the first file that can be read ends the search,
// even when it holds no certificate; SSL_CERT_DIR (when not empty,
// ':'-separated) replaces the directory list, and every file of each
// directory is read except symlinks to a name in the same directory.
// Only PEM blocks of type CERTIFICATE, without headers, that parse count
// (AppendCertsFromPEM), each certificate once. Roots embedded with
// golang.org/x/crypto/x509roots/fallback are used when that loads none,
// or always with GODEBUG x509usefallbackroots=1 (root.go).
func predictRoots(p *proc, r goRules, g *GoInfo) rootsFound {
	var res rootsFound
	seen := map[[sha256.Size224]byte]bool{}
	add := func(data []byte) int {
		n := 0
		for len(data) > 0 {
			var b *pem.Block
			if b, data = pem.Decode(data); b == nil {
				break
			}
			if b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				continue
			}
			if sum := sha256.Sum224(c.Raw); !seen[sum] {
				seen[sum] = true
				res.certs++
			}
			n++
		}
		return n
	}
	noteErr := func(p string, err error) {
		if res.firstErr == nil && !isNotExist(err) {
			res.firstErr, res.errPath = err, p
		}
	}
	files := certFiles
	if f, _ := p.getenv("SSL_CERT_FILE"); f != "" {
		files = []string{f}
	}
	res.files = files
	for _, f := range files {
		data, err := p.readFile(f)
		if err == nil {
			res.file, res.fileN = f, add(data)
			break
		}
		noteErr(f, err)
	}
	dirs := r.certDirs
	if d, _ := p.getenv("SSL_CERT_DIR"); d != "" {
		dirs = strings.Split(d, ":")
	}
	for _, d := range dirs {
		ents, err := p.readDir(d)
		if err != nil {
			noteErr(d, err)
			continue
		}
		before := res.certs
		for _, e := range ents {
			if e.Type == TypeSymlink && !strings.Contains(e.Linkname, "/") {
				continue
			}
			name := e.Path[strings.LastIndexByte(e.Path, '/')+1:]
			if data, err := p.readFile(d + "/" + name); err == nil {
				add(data)
			}
		}
		if res.dir == "" && res.certs > before {
			res.dir = d
		}
	}
	if g != nil && g.EmbedsRoots {
		env, _ := p.getenv("GODEBUG")
		if v, _ := godebugValue(g.DefaultDebug, env, "x509usefallbackroots"); v == "1" {
			res.fallback = "GODEBUG x509usefallbackroots=1"
		} else if res.certs == 0 {
			res.fallback = "the image has none"
		}
	}
	return res
}

// zoneSources are zoneinfo_unix.go's platformZoneSources, the same in
// every known release.
var zoneSources = []string{"/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/"}

// zoneProbe is the zone files.tzdata asks about: a name every zoneinfo
// database has and that only a database can answer (LoadLocation("UTC")
// reads nothing).
const zoneProbe = "America/New_York"

// predictZone follows time.LoadLocation for name: ZONEINFO (when not
// empty) first, a directory or, only when its name ends in ".zip", a zip
// of stored entries; then the platform sources; then time/tzdata when it
// is linked; then $GOROOT/lib/time/zoneinfo.zip when GOROOT is set.
// Each candidate must read (a directory or a file over 10 MB does not)
// and parse as TZif data. It returns where the zone came from, or why it
// does not load.
func predictZone(p *proc, g *GoInfo, name string) (string, error) {
	var firstErr error
	note := func(err error) {
		if firstErr == nil && err != syscall.ENOENT {
			firstErr = err
		}
	}
	try := func(source string) (string, bool) {
		data, err := zoneData(p, source, name)
		if err == nil {
			if _, err = time.LoadLocationFromTZData(name, data); err == nil {
				return source, true
			}
		}
		note(err)
		return "", false
	}
	if z, _ := p.getenv("ZONEINFO"); z != "" {
		if src, ok := try(z); ok {
			return "ZONEINFO=" + src, nil
		}
	}
	for _, src := range zoneSources {
		if s, ok := try(src); ok {
			return s, nil
		}
	}
	if g != nil && g.EmbedsZones {
		return "time/tzdata embedded in the binary", nil
	}
	if root, _ := p.getenv("GOROOT"); root != "" {
		if s, ok := try(root + "/lib/time/zoneinfo.zip"); ok {
			return "GOROOT " + s, nil
		}
	}
	if firstErr == nil {
		firstErr = syscall.ENOENT
	}
	return "", firstErr
}

// zoneData is time's loadTzinfoFromDirOrZip.
func zoneData(p *proc, source, name string) ([]byte, error) {
	if len(source) > 4 && strings.HasSuffix(source, ".zip") {
		return zipEntry(p, source, name)
	}
	if source != "" {
		name = source + "/" + name
	}
	data, err := p.readFile(name)
	if err == nil && len(data) > 10<<20 {
		return nil, errors.New("file too large")
	}
	return data, err
}

// zipEntry reads a stored entry the way time's loadTzinfoFromZip does:
// the end-of-central-directory record must be the last 22 bytes (a zip
// with a comment is "corrupt"), and only uncompressed entries are read.
func zipEntry(p *proc, zip, name string) ([]byte, error) {
	data, err := p.readFile(zip)
	if err != nil {
		return nil, err
	}
	const tail, hdr = 22, 46
	corrupt := fmt.Errorf("corrupt zip file %s", zip)
	if len(data) < tail || binary.LittleEndian.Uint32(data[len(data)-tail:]) != 0x06054b50 {
		return nil, corrupt
	}
	t := data[len(data)-tail:]
	n := int(binary.LittleEndian.Uint16(t[10:]))
	size := int(binary.LittleEndian.Uint32(t[12:]))
	off := int(binary.LittleEndian.Uint32(t[16:]))
	if off < 0 || size < 0 || off > len(data) || size > len(data)-off {
		return nil, corrupt
	}
	dir := data[off : off+size]
	for i := 0; i < n; i++ {
		if len(dir) < hdr || binary.LittleEndian.Uint32(dir) != 0x02014b50 {
			break
		}
		meth := binary.LittleEndian.Uint16(dir[10:])
		usize := int(binary.LittleEndian.Uint32(dir[24:]))
		namelen := int(binary.LittleEndian.Uint16(dir[28:]))
		xlen := int(binary.LittleEndian.Uint16(dir[30:]))
		fclen := int(binary.LittleEndian.Uint16(dir[32:]))
		loff := int(binary.LittleEndian.Uint32(dir[42:]))
		if hdr+namelen+xlen+fclen > len(dir) {
			// time would index past its buffer and panic; it is no zone.
			return nil, corrupt
		}
		zname := string(dir[hdr : hdr+namelen])
		dir = dir[hdr+namelen+xlen+fclen:]
		if zname != name {
			continue
		}
		if meth != 0 {
			return nil, fmt.Errorf("unsupported compression for %s in %s", name, zip)
		}
		// The local header must repeat the method and the name.
		if loff < 0 || loff > len(data)-30-namelen || binary.LittleEndian.Uint32(data[loff:]) != 0x04034b50 ||
			binary.LittleEndian.Uint16(data[loff+8:]) != meth || int(binary.LittleEndian.Uint16(data[loff+26:])) != namelen ||
			string(data[loff+30:loff+30+namelen]) != name {
			return nil, corrupt
		}
		start := loff + 30 + namelen + int(binary.LittleEndian.Uint16(data[loff+28:]))
		if start > len(data) || usize > len(data)-start {
			return nil, corrupt
		}
		return data[start : start+usize], nil
	}
	return nil, syscall.ENOENT
}
