package verify

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"runtime/debug"
	"strings"
)

// GoInfo is what verification learns about a Go binary from its build info
// and its function table. Which packages are linked is read from the names
// in .gopclntab, which the runtime needs and so survives -s -w; a function
// is there only if the linker kept it.
type GoInfo struct {
	GoVersion    string
	CgoEnabled   bool
	Tags         []string
	DefaultDebug string // DefaultGODEBUG: the //go:debug and go.mod defaults compiled in
	Modules      []Module

	HasFuncTable bool // .gopclntab was found; without it the linked-package answers are unknown
	UsesNet      bool // the resolver is linked (net.(*Resolver) methods)
	LoadsRoots   bool // crypto/x509 loads the system CA roots
	EmbedsRoots  bool // golang.org/x/crypto/x509roots/fallback is linked: roots inside the binary
	LoadsZones   bool // time.LoadLocation is linked
	EmbedsZones  bool // time/tzdata is linked: zones are inside the binary
}

// Module is a dependency from build info.
type Module struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Sum     string `json:"sum,omitempty"`
}

// ReadGoInfo reads build info and the function table of a Go binary. A
// binary that is not Go returns nil: the Go-specific checks then skip.
func ReadGoInfo(data []byte) *GoInfo {
	bi := readBuildInfo(data)
	if bi == nil {
		return nil
	}
	g := &GoInfo{GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "CGO_ENABLED":
			g.CgoEnabled = s.Value == "1"
		case "-tags":
			for _, t := range strings.Split(s.Value, ",") {
				if t = strings.TrimSpace(t); t != "" {
					g.Tags = append(g.Tags, t)
				}
			}
		case "DefaultGODEBUG":
			g.DefaultDebug = s.Value
		}
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		g.Modules = append(g.Modules, Module{Path: m.Path, Version: m.Version, Sum: m.Sum})
	}
	if tab := funcTable(data); tab != nil {
		g.HasFuncTable = true
		has := func(name string) bool { return bytes.Contains(tab, []byte("\x00"+name)) }
		g.UsesNet = has("net.(*Resolver).")
		g.LoadsRoots = has("crypto/x509.loadSystemRoots\x00")
		g.EmbedsRoots = has("golang.org/x/crypto/x509roots/fallback.")
		g.LoadsZones = has("time.LoadLocation\x00")
		g.EmbedsZones = has("time/tzdata.")
	}
	return g
}

// HasTag reports whether the binary was built with a build tag.
func (g *GoInfo) HasTag(tag string) bool {
	for _, t := range g.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// funcTable returns the bytes of .gopclntab, where function names are
// stored NUL-terminated.
func funcTable(data []byte) []byte { return elfSection(data, ".gopclntab") }

// readBuildInfo reads the build info Go 1.18+ stores inline in
// .go.buildinfo. debug/buildinfo is not used: it parses the file with
// debug/elf, whose cost a crafted binary can make quadratic in its size.
func readBuildInfo(data []byte) *debug.BuildInfo {
	sec := elfSection(data, ".go.buildinfo")
	const magic = "\xff Go buildinf:"
	if len(sec) < 32 || !bytes.HasPrefix(sec, []byte(magic)) || sec[15]&0x2 == 0 {
		return nil
	}
	rest := sec[32:]
	next := func() (string, bool) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "", false
		}
		s := string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
		return s, true
	}
	vers, ok1 := next()
	mod, ok2 := next()
	if !ok1 || !ok2 {
		return nil
	}
	// The module info is framed by 16-byte sentinels.
	if len(mod) >= 33 && mod[len(mod)-17] == '\n' {
		mod = mod[16 : len(mod)-16]
	} else {
		mod = ""
	}
	bi, err := debug.ParseBuildInfo(mod)
	if err != nil {
		bi = &debug.BuildInfo{}
	}
	bi.GoVersion = vers
	return bi
}

// elfSection returns the contents of the named section, reading the
// section headers directly with every count and offset bounded by the input
// (a crafted file can hold tens of thousands of section names).
func elfSection(data []byte, name string) []byte {
	if len(data) < 64 || string(data[:4]) != elf.ELFMAG {
		return nil
	}
	var order binary.ByteOrder = binary.LittleEndian
	if elf.Data(data[elf.EI_DATA]) == elf.ELFDATA2MSB {
		order = binary.BigEndian
	}
	is64 := elf.Class(data[elf.EI_CLASS]) == elf.ELFCLASS64
	var shoff uint64
	var shentsize, shnum, shstrndx int
	if is64 {
		shoff = order.Uint64(data[0x28:])
		shentsize, shnum, shstrndx = int(order.Uint16(data[0x3a:])), int(order.Uint16(data[0x3c:])), int(order.Uint16(data[0x3e:]))
	} else {
		shoff = uint64(order.Uint32(data[0x20:]))
		shentsize, shnum, shstrndx = int(order.Uint16(data[0x2e:])), int(order.Uint16(data[0x30:])), int(order.Uint16(data[0x32:]))
	}
	minEnt := 40
	if is64 {
		minEnt = 64
	}
	if shentsize < minEnt || shnum == 0 || shstrndx >= shnum || shoff > uint64(len(data)) || uint64(shnum)*uint64(shentsize) > uint64(len(data))-shoff {
		return nil
	}
	header := func(i int) (nameOff uint32, typ elf.SectionType, off, size uint64) {
		h := data[shoff+uint64(i*shentsize):]
		nameOff, typ = order.Uint32(h[0:]), elf.SectionType(order.Uint32(h[4:]))
		if is64 {
			return nameOff, typ, order.Uint64(h[0x18:]), order.Uint64(h[0x20:])
		}
		return nameOff, typ, uint64(order.Uint32(h[0x10:])), uint64(order.Uint32(h[0x14:]))
	}
	within := func(off, size uint64) bool { return off <= uint64(len(data)) && size <= uint64(len(data))-off }
	_, _, strOff, strSize := header(shstrndx)
	if !within(strOff, strSize) {
		return nil
	}
	strtab := data[strOff : strOff+strSize]
	want := append([]byte(name), 0)
	for i := 0; i < shnum; i++ {
		nameOff, typ, off, size := header(i)
		if uint64(nameOff) >= uint64(len(strtab)) || !bytes.HasPrefix(strtab[nameOff:], want) {
			continue
		}
		if typ == elf.SHT_NOBITS || !within(off, size) {
			return nil
		}
		return data[off : off+size]
	}
	return nil
}
