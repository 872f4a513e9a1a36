package verify

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ELF is what the checks need to know about a binary or shared library:
// what it runs on, which loader and libraries it asks for, where it says
// to look for them, and which symbol versions it needs or provides.
type ELF struct {
	Class   elf.Class
	Machine elf.Machine
	Arch    string // GOARCH-style: "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", ...; "" if unknown
	Type    elf.Type
	Interp  string   // PT_INTERP, "" when static
	Needed  []string // DT_NEEDED, in order
	// RPath and RunPath are DT_RPATH and DT_RUNPATH split on ':', empty
	// elements kept (glibc reads them as the working directory); when an
	// object has several entries of one, the last counts, as in both
	// loaders.
	RPath   []string
	RunPath []string
	SOName  string
	// NoDefLib is DF_1_NODEFLIB (-z nodefaultlib): glibc skips the
	// system directories and ld.so.cache for what this object needs.
	NoDefLib bool

	// VersionNeeds maps a library file name (e.g. "libc.so.6") to the
	// version names needed from it (e.g. "GLIBC_2.34"), sorted; a library
	// no version is needed from is absent, and the map is nil when the
	// object has no DT_VERNEED.
	VersionNeeds map[string][]string
	// VersionDefs are the version names this object defines (e.g.
	// "GLIBC_2.2.5"), sorted, without the base entry that names the file.
	VersionDefs []string

	// Static is true when no loader is involved: no PT_INTERP and no
	// DT_NEEDED (a static-pie has PT_DYNAMIC but neither, and is static).
	Static bool
}

const (
	// maxELFString bounds one name read from the dynamic string table;
	// longer is malformed (PATH_MAX), and the bound keeps the scan cheap.
	maxELFString = 4096
	// maxDynStringBytes bounds the DT_NEEDED, DT_RPATH, DT_RUNPATH and
	// DT_SONAME strings together: a crafted table could otherwise point
	// every entry at one long string.
	maxDynStringBytes = 1 << 20
	// maxVersionRecords bounds the verneed/vernaux/verdef records walked;
	// libstdc++, among the largest, has a few hundred.
	maxVersionRecords = 4096

	verFlagBase = 0x1 // VER_FLG_BASE: the verdef entry naming the file itself
)

// ReadELF parses data as an ELF object. Malformed input, whatever its
// shape, gives an error starting "malformed ELF", never a panic, and the
// work and memory spent are bounded by the input's size.
//
// Only the ELF header and program headers are read, and the dynamic table
// is read the way the loader reads it: through PT_DYNAMIC and the
// addresses its entries give, not through section headers, which a binary
// can lack or contradict. debug/elf supplies the types and constants but
// not the parsing, because its cost is not bounded by the input: NewFile
// scans the section-name table once per section (a crafted 2 MB file
// takes about 20 s), every DT_NEEDED or vernaux record may copy the same
// long string, and a verdef record may claim 65535 names at one offset.
func ReadELF(data []byte) (e *ELF, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("malformed ELF: %v", r)
		}
	}()
	return readELF(data)
}

// readELF is ReadELF without its last-resort recover, so that fuzzing
// finds any panic of kiln's own parsing.
func readELF(data []byte) (*ELF, error) {
	o, e, err := readHeader(data)
	if err != nil {
		return nil, err
	}
	var dyn *elf.ProgHeader
	interpSeen := false
	for i := range o.progs {
		p := o.progs[i]
		switch p.Type {
		case elf.PT_LOAD:
			// The kernel maps a segment past the end of the file without
			// complaint, and the process dies when it touches it: a
			// truncated binary is malformed from its headers alone.
			if _, ok := o.fileRange(p.Off, p.Filesz); !ok {
				return nil, fmt.Errorf("malformed ELF: PT_LOAD at offset 0x%x (0x%x bytes) extends past the end of the file (%d bytes): truncated?", p.Off, p.Filesz, len(data))
			}
			o.loads = append(o.loads, p)
		case elf.PT_INTERP:
			if interpSeen {
				continue // the kernel uses the first
			}
			interpSeen = true
			if e.Interp, err = o.interp(p); err != nil {
				return nil, err
			}
		case elf.PT_DYNAMIC:
			if dyn != nil {
				return nil, fmt.Errorf("malformed ELF: more than one PT_DYNAMIC")
			}
			dyn = &o.progs[i]
		}
	}
	if dyn != nil {
		if err := o.dynamic(*dyn, e); err != nil {
			return nil, err
		}
	}
	e.Static = e.Interp == "" && len(e.Needed) == 0
	return e, nil
}

// maxPhdrBytes bounds the program header table. The kernel accepts at
// most a page of it; 64 KiB covers the largest page size.
const maxPhdrBytes = 64 << 10

// readHeader reads the ELF header and the program headers.
func readHeader(data []byte) (*object, *ELF, error) {
	if len(data) < 52 || string(data[:4]) != elf.ELFMAG {
		return nil, nil, fmt.Errorf("malformed ELF: no ELF header")
	}
	o := &object{data: data, class: elf.Class(data[elf.EI_CLASS])}
	switch elf.Data(data[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		o.order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		o.order = binary.BigEndian
	default:
		return nil, nil, fmt.Errorf("malformed ELF: unknown data encoding %d", data[elf.EI_DATA])
	}
	e := &ELF{
		Class:   o.class,
		Type:    elf.Type(o.order.Uint16(data[16:])),
		Machine: elf.Machine(o.order.Uint16(data[18:])),
	}
	e.Arch = goarch(o.class, elf.Data(data[elf.EI_DATA]), e.Machine)

	var phoff uint64
	var phentsize, phnum, want int
	switch o.class {
	case elf.ELFCLASS64:
		if len(data) < 64 {
			return nil, nil, fmt.Errorf("malformed ELF: truncated header")
		}
		phoff = o.order.Uint64(data[32:])
		phentsize, phnum, want = int(o.order.Uint16(data[54:])), int(o.order.Uint16(data[56:])), 56
	case elf.ELFCLASS32:
		phoff = uint64(o.order.Uint32(data[28:]))
		phentsize, phnum, want = int(o.order.Uint16(data[42:])), int(o.order.Uint16(data[44:])), 32
	default:
		return nil, nil, fmt.Errorf("malformed ELF: unknown class %d", data[elf.EI_CLASS])
	}
	if phnum == 0 {
		return o, e, nil // a relocatable object, or nothing the loader would run
	}
	if phentsize != want {
		return nil, nil, fmt.Errorf("malformed ELF: program header size %d, want %d", phentsize, want)
	}
	if phnum*phentsize > maxPhdrBytes {
		return nil, nil, fmt.Errorf("malformed ELF: %d program headers", phnum)
	}
	tab, ok := o.fileRange(phoff, uint64(phnum*phentsize))
	if !ok {
		return nil, nil, fmt.Errorf("malformed ELF: program headers lie outside the file")
	}
	o.progs = make([]elf.ProgHeader, phnum)
	for i := range o.progs {
		b := tab[i*phentsize:]
		p := &o.progs[i]
		if o.class == elf.ELFCLASS64 {
			p.Type = elf.ProgType(o.order.Uint32(b))
			p.Flags = elf.ProgFlag(o.order.Uint32(b[4:]))
			p.Off = o.order.Uint64(b[8:])
			p.Vaddr = o.order.Uint64(b[16:])
			p.Paddr = o.order.Uint64(b[24:])
			p.Filesz = o.order.Uint64(b[32:])
			p.Memsz = o.order.Uint64(b[40:])
			p.Align = o.order.Uint64(b[48:])
		} else {
			p.Type = elf.ProgType(o.order.Uint32(b))
			p.Off = uint64(o.order.Uint32(b[4:]))
			p.Vaddr = uint64(o.order.Uint32(b[8:]))
			p.Paddr = uint64(o.order.Uint32(b[12:]))
			p.Filesz = uint64(o.order.Uint32(b[16:]))
			p.Memsz = uint64(o.order.Uint32(b[20:]))
			p.Flags = elf.ProgFlag(o.order.Uint32(b[24:]))
			p.Align = uint64(o.order.Uint32(b[28:]))
		}
	}
	return o, e, nil
}

// object is the raw file with what is needed to follow addresses in it.
type object struct {
	data     []byte
	order    binary.ByteOrder
	class    elf.Class
	progs    []elf.ProgHeader
	loads    []elf.ProgHeader
	strtab   []byte
	strBytes int // dynamic strings read so far, against maxDynStringBytes
}

// fileRange returns data[off:off+size] if it lies within the file.
func (o *object) fileRange(off, size uint64) ([]byte, bool) {
	n := uint64(len(o.data))
	if off > n || size > n-off {
		return nil, false
	}
	return o.data[off : off+size], true
}

// at returns the file bytes from virtual address addr to the end of the
// file-backed part of the PT_LOAD segment holding it.
func (o *object) at(addr uint64) ([]byte, bool) {
	for _, p := range o.loads {
		if addr < p.Vaddr || addr-p.Vaddr >= p.Filesz {
			continue
		}
		seg, ok := o.fileRange(p.Off, p.Filesz)
		if !ok {
			return nil, false
		}
		return seg[addr-p.Vaddr:], true
	}
	return nil, false
}

func (o *object) interp(p elf.ProgHeader) (string, error) {
	// The kernel refuses an interpreter path that is empty, longer than
	// PATH_MAX or not NUL-terminated; so does this.
	if p.Filesz < 2 || p.Filesz > maxELFString {
		return "", fmt.Errorf("malformed ELF: PT_INTERP of %d bytes", p.Filesz)
	}
	b, ok := o.fileRange(p.Off, p.Filesz)
	if !ok {
		return "", fmt.Errorf("malformed ELF: PT_INTERP lies outside the file")
	}
	if b[len(b)-1] != 0 {
		return "", fmt.Errorf("malformed ELF: PT_INTERP is not NUL-terminated")
	}
	s := string(b[:bytes.IndexByte(b, 0)])
	if s == "" {
		return "", fmt.Errorf("malformed ELF: empty PT_INTERP")
	}
	return s, nil
}

// dynamic reads the tags of the PT_DYNAMIC segment up to DT_NULL.
func (o *object) dynamic(p elf.ProgHeader, e *ELF) error {
	b, ok := o.fileRange(p.Off, p.Filesz)
	if !ok {
		return fmt.Errorf("malformed ELF: PT_DYNAMIC lies outside the file")
	}
	size := 16
	if o.class == elf.ELFCLASS32 {
		size = 8
	}
	var (
		needed, rpath, runpath           []uint64
		soname                           *uint64
		strtab, strsz, verneed, verdef   uint64
		haveStrtab, haveVerneed, haveDef bool
	)
tags:
	for ; len(b) >= size; b = b[size:] {
		var tag elf.DynTag
		var val uint64
		if size == 16 {
			tag, val = elf.DynTag(o.order.Uint64(b)), o.order.Uint64(b[8:])
		} else {
			tag, val = elf.DynTag(o.order.Uint32(b)), uint64(o.order.Uint32(b[4:]))
		}
		switch tag {
		case elf.DT_NULL:
			break tags
		case elf.DT_NEEDED:
			needed = append(needed, val)
		case elf.DT_RPATH:
			rpath = []uint64{val}
		case elf.DT_RUNPATH:
			runpath = []uint64{val}
		case elf.DT_FLAGS_1:
			e.NoDefLib = val&uint64(elf.DF_1_NODEFLIB) != 0
		case elf.DT_SONAME:
			if soname == nil {
				soname = &val
			}
		case elf.DT_STRTAB:
			strtab, haveStrtab = val, true
		case elf.DT_STRSZ:
			strsz = val
		case elf.DT_VERNEED:
			verneed, haveVerneed = val, true
		case elf.DT_VERDEF:
			verdef, haveDef = val, true
		}
	}
	if len(needed)+len(rpath)+len(runpath) == 0 && soname == nil && !haveVerneed && !haveDef {
		return nil // e.g. a static-pie: nothing to name
	}
	if !haveStrtab {
		return fmt.Errorf("malformed ELF: PT_DYNAMIC has names but no DT_STRTAB")
	}
	st, ok := o.at(strtab)
	if !ok {
		return fmt.Errorf("malformed ELF: DT_STRTAB 0x%x is not in a loaded segment", strtab)
	}
	if strsz > 0 && strsz < uint64(len(st)) {
		st = st[:strsz]
	}
	o.strtab = st

	for _, off := range needed {
		s, err := o.dynString(off, "DT_NEEDED")
		if err != nil {
			return err
		}
		e.Needed = append(e.Needed, s)
	}
	for _, off := range rpath {
		s, err := o.dynString(off, "DT_RPATH")
		if err != nil {
			return err
		}
		e.RPath = append(e.RPath, strings.Split(s, ":")...)
	}
	for _, off := range runpath {
		s, err := o.dynString(off, "DT_RUNPATH")
		if err != nil {
			return err
		}
		e.RunPath = append(e.RunPath, strings.Split(s, ":")...)
	}
	if soname != nil {
		s, err := o.dynString(*soname, "DT_SONAME")
		if err != nil {
			return err
		}
		e.SOName = s
	}
	if haveVerneed {
		needs, err := o.versionNeeds(verneed)
		if err != nil {
			return err
		}
		e.VersionNeeds = needs
	}
	if haveDef {
		defs, err := o.versionDefs(verdef)
		if err != nil {
			return err
		}
		e.VersionDefs = defs
	}
	return nil
}

// str returns the NUL-terminated name at off in the dynamic string table,
// without copying it.
func (o *object) str(off uint64, what string) ([]byte, error) {
	if off >= uint64(len(o.strtab)) {
		return nil, fmt.Errorf("malformed ELF: %s name at 0x%x is outside the string table", what, off)
	}
	b := o.strtab[off:]
	if len(b) > maxELFString+1 {
		b = b[:maxELFString+1]
	}
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, fmt.Errorf("malformed ELF: %s name at 0x%x is unterminated or longer than %d bytes", what, off, maxELFString)
	}
	return b[:i], nil
}

func (o *object) dynString(off uint64, what string) (string, error) {
	b, err := o.str(off, what)
	if err != nil {
		return "", err
	}
	o.strBytes += len(b)
	if o.strBytes > maxDynStringBytes {
		return "", fmt.Errorf("malformed ELF: dynamic names exceed %d bytes", maxDynStringBytes)
	}
	return string(b), nil
}

// versionNeeds walks the Elf_Verneed chain at addr as glibc's loader does
// (vn_next / vna_next, 0 ends a chain); both record layouts are the same
// for 32- and 64-bit objects.
func (o *object) versionNeeds(addr uint64) (map[string][]string, error) {
	b, ok := o.at(addr)
	if !ok {
		return nil, fmt.Errorf("malformed ELF: DT_VERNEED 0x%x is not in a loaded segment", addr)
	}
	sets := map[string]map[string]bool{}
	records := 0
	for off := uint64(0); ; {
		if records++; records > maxVersionRecords {
			return nil, fmt.Errorf("malformed ELF: more than %d version records", maxVersionRecords)
		}
		r, err := record(b, off, 16, "verneed")
		if err != nil {
			return nil, err
		}
		if v := o.order.Uint16(r); v != 1 {
			return nil, fmt.Errorf("malformed ELF: verneed record version %d, want 1", v)
		}
		cnt := o.order.Uint16(r[2:])
		file, err := o.str(uint64(o.order.Uint32(r[4:])), "verneed file")
		if err != nil {
			return nil, err
		}
		aux := off + uint64(o.order.Uint32(r[8:]))
		for range cnt {
			if records++; records > maxVersionRecords {
				return nil, fmt.Errorf("malformed ELF: more than %d version records", maxVersionRecords)
			}
			a, err := record(b, aux, 16, "vernaux")
			if err != nil {
				return nil, err
			}
			name, err := o.str(uint64(o.order.Uint32(a[8:])), "vernaux")
			if err != nil {
				return nil, err
			}
			set := sets[string(file)]
			if set == nil {
				set = map[string]bool{}
				sets[string(file)] = set
			}
			set[string(name)] = true
			next := o.order.Uint32(a[12:])
			if next == 0 {
				break
			}
			aux += uint64(next)
		}
		next := o.order.Uint32(r[12:])
		if next == 0 {
			break
		}
		off += uint64(next)
	}
	needs := make(map[string][]string, len(sets))
	for file, set := range sets {
		needs[file] = sortedKeys(set)
	}
	return needs, nil
}

// versionDefs walks the Elf_Verdef chain at addr; the first verdaux of
// each record is the version's name, the others name its parents.
func (o *object) versionDefs(addr uint64) ([]string, error) {
	b, ok := o.at(addr)
	if !ok {
		return nil, fmt.Errorf("malformed ELF: DT_VERDEF 0x%x is not in a loaded segment", addr)
	}
	set := map[string]bool{}
	records := 0
	for off := uint64(0); ; {
		if records++; records > maxVersionRecords {
			return nil, fmt.Errorf("malformed ELF: more than %d version records", maxVersionRecords)
		}
		r, err := record(b, off, 20, "verdef")
		if err != nil {
			return nil, err
		}
		if v := o.order.Uint16(r); v != 1 {
			return nil, fmt.Errorf("malformed ELF: verdef record version %d, want 1", v)
		}
		flags, cnt := o.order.Uint16(r[2:]), o.order.Uint16(r[6:])
		if flags&verFlagBase == 0 && cnt > 0 {
			aux := off + uint64(o.order.Uint32(r[12:]))
			a, err := record(b, aux, 8, "verdaux")
			if err != nil {
				return nil, err
			}
			name, err := o.str(uint64(o.order.Uint32(a)), "verdaux")
			if err != nil {
				return nil, err
			}
			set[string(name)] = true
		}
		next := o.order.Uint32(r[16:])
		if next == 0 {
			break
		}
		off += uint64(next)
	}
	return sortedKeys(set), nil
}

// record returns seg from off, where a version record of size bytes
// must lie whole.
func record(seg []byte, off, size uint64, what string) ([]byte, error) {
	if off > uint64(len(seg)) || uint64(len(seg))-off < size {
		return nil, fmt.Errorf("malformed ELF: %s record at +0x%x is outside its segment", what, off)
	}
	return seg[off:], nil
}

func sortedKeys(set map[string]bool) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// goarch names the machine the way GOARCH does, "" for machines Go does
// not target (x32, 32-bit PowerPC, ...).
func goarch(class elf.Class, data elf.Data, m elf.Machine) string {
	is64 := class == elf.ELFCLASS64
	le := data == elf.ELFDATA2LSB
	switch {
	case m == elf.EM_X86_64 && is64:
		return "amd64"
	case m == elf.EM_386 && !is64:
		return "386"
	case m == elf.EM_AARCH64 && is64:
		return "arm64"
	case m == elf.EM_ARM && !is64:
		return "arm"
	case m == elf.EM_PPC64 && is64 && le:
		return "ppc64le"
	case m == elf.EM_PPC64 && is64:
		return "ppc64"
	case m == elf.EM_S390 && is64:
		return "s390x"
	case m == elf.EM_RISCV && is64:
		return "riscv64"
	case m == elf.EM_LOONGARCH && is64:
		return "loong64"
	case m == elf.EM_MIPS && is64 && le:
		return "mips64le"
	case m == elf.EM_MIPS && is64:
		return "mips64"
	case m == elf.EM_MIPS && le:
		return "mipsle"
	case m == elf.EM_MIPS:
		return "mips"
	}
	return ""
}

// MaxGlibcVersion returns the highest "GLIBC_x.y[.z]" name in names by
// numeric comparison (GLIBC_2.9 < GLIBC_2.34), or "" if there is none.
// Other names (GLIBC_PRIVATE, GLIBCXX_3.4, ...) are ignored.
func MaxGlibcVersion(names []string) string {
	best := ""
	for _, n := range names {
		if !strings.HasPrefix(n, "GLIBC_") {
			continue
		}
		if _, ok := parseGlibc(n); !ok {
			continue
		}
		if best == "" || CompareGlibc(n, best) > 0 {
			best = n
		}
	}
	return best
}

// CompareGlibc compares two glibc versions numerically, component by
// component, a missing component counting as 0 ("GLIBC_2.2" equals
// "GLIBC_2.2.0"). The "GLIBC_" prefix is optional, so "2.34" compares with
// "GLIBC_2.34". It returns -1, 0 or +1. A string that is not a version
// sorts before every version; two such strings compare as strings.
func CompareGlibc(a, b string) int {
	va, oka := parseGlibc(a)
	vb, okb := parseGlibc(b)
	switch {
	case !oka && !okb:
		return strings.Compare(a, b)
	case !oka:
		return -1
	case !okb:
		return 1
	}
	for i := range max(len(va), len(vb)) {
		var x, y int
		if i < len(va) {
			x = va[i]
		}
		if i < len(vb) {
			y = vb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func parseGlibc(s string) ([]int, bool) {
	s = strings.TrimPrefix(s, "GLIBC_")
	if s == "" {
		return nil, false
	}
	parts := strings.Split(s, ".")
	v := make([]int, len(parts))
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return nil, false
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		v[i] = n
	}
	return v, true
}
