package verify

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
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
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
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
func funcTable(data []byte) (tab []byte) {
	defer func() {
		if recover() != nil {
			tab = nil
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	s := f.Section(".gopclntab")
	if s == nil || s.Type == elf.SHT_NOBITS || s.Offset+s.Size > uint64(len(data)) || s.Offset > s.Offset+s.Size {
		return nil
	}
	return data[s.Offset : s.Offset+s.Size]
}
