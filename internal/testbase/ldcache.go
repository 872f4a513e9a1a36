package testbase

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// glibc's ld.so.cache in the "new" format that ldconfig has written alone
// since glibc 2.32 (all fields little endian on the architectures here):
//
//	header  48 bytes: "glibc-ld.so.cache" "1.1", nlibs u32, len_strings u32,
//	        flags u8 (2 = little endian), 3 pad, extension_offset u32, 3×u32 unused
//	entries nlibs × 24 bytes: flags i32, key u32, value u32, osversion u32, hwcap u64
//	strings len_strings bytes of NUL-terminated strings
//
// key and value are offsets from the start of the header. The loader
// binary-searches the entries, so their order is part of the format.
const (
	ldCacheMagic        = "glibc-ld.so.cache1.1"
	ldCacheHeaderSize   = 48
	ldCacheEntrySize    = 24
	ldCacheLittleEndian = 2

	// Entry flags: the library type in the low byte, the ABI in the next.
	ldFlagELFLibc6   = 0x0003
	ldFlagX8664Lib64 = 0x0300
	ldFlagAArch64    = 0x0a00
)

// ldCacheEntry is one library in an ld.so.cache.
type ldCacheEntry struct {
	Soname string // key: the name a DT_NEEDED entry asks for
	Path   string // value: where the loader opens it
	Flags  int32
	Hwcap  uint64
}

// ldCacheFlags returns the cache flags ldconfig gives a glibc library of
// the ELF machine m, which are the only flags the loader of that
// architecture accepts.
func ldCacheFlags(m elf.Machine) (int32, error) {
	switch m {
	case elf.EM_X86_64:
		return ldFlagELFLibc6 | ldFlagX8664Lib64, nil
	case elf.EM_AARCH64:
		return ldFlagELFLibc6 | ldFlagAArch64, nil
	}
	return 0, fmt.Errorf("no ld.so.cache flags known for ELF machine %s", m)
}

// ldCacheEntryFor describes the shared object b installed at path p.
func ldCacheEntryFor(p string, b []byte) (ldCacheEntry, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return ldCacheEntry{}, fmt.Errorf("parsing ELF %s: %w", p, err)
	}
	defer f.Close()
	flags, err := ldCacheFlags(f.Machine)
	if err != nil {
		return ldCacheEntry{}, fmt.Errorf("%s: %w", p, err)
	}
	sonames, err := f.DynString(elf.DT_SONAME)
	if err != nil || len(sonames) != 1 {
		return ldCacheEntry{}, fmt.Errorf("%s: reading DT_SONAME: want one, got %q (%v)", p, sonames, err)
	}
	// ldconfig would add a soname symlink; these images install each
	// library under its soname instead.
	if sonames[0] != p[strings.LastIndexByte(p, '/')+1:] {
		return ldCacheEntry{}, fmt.Errorf("%s: file name differs from its soname %s", p, sonames[0])
	}
	return ldCacheEntry{Soname: sonames[0], Path: p, Flags: flags}, nil
}

// ldCacheLibcmp orders sonames as glibc's _dl_cache_libcmp does: runs of
// digits compare as numbers, and a digit sorts after any other byte.
func ldCacheLibcmp(a, b string) int {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	i, j := 0, 0
	for i < len(a) {
		switch {
		case isDigit(a[i]) && j < len(b) && isDigit(b[j]):
			va, vb := 0, 0
			for ; i < len(a) && isDigit(a[i]); i++ {
				va = va*10 + int(a[i]-'0')
			}
			for ; j < len(b) && isDigit(b[j]); j++ {
				vb = vb*10 + int(b[j]-'0')
			}
			if va != vb {
				return va - vb
			}
		case isDigit(a[i]):
			return 1
		case j < len(b) && isDigit(b[j]):
			return -1
		case j >= len(b):
			return int(a[i])
		case a[i] != b[j]:
			return int(a[i]) - int(b[j])
		default:
			i++
			j++
		}
	}
	if j < len(b) {
		return -int(b[j])
	}
	return 0
}

// buildLDCache encodes entries as an ld.so.cache without an extension
// section (ldconfig stores its version string there; the loader ignores
// it). Entries are sorted as ldconfig sorts them: descending by soname,
// then by descending flags and hwcap.
func buildLDCache(entries []ldCacheEntry) []byte {
	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(x, y ldCacheEntry) int {
		if c := ldCacheLibcmp(y.Soname, x.Soname); c != 0 {
			return c
		}
		if x.Flags != y.Flags {
			return int(y.Flags - x.Flags)
		}
		switch {
		case x.Hwcap > y.Hwcap:
			return -1
		case x.Hwcap < y.Hwcap:
			return 1
		}
		return 0
	})

	base := uint32(ldCacheHeaderSize + ldCacheEntrySize*len(entries))
	var strs bytes.Buffer
	offsets := map[string]uint32{}
	intern := func(s string) uint32 {
		if off, ok := offsets[s]; ok {
			return off
		}
		off := base + uint32(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		offsets[s] = off
		return off
	}

	le := binary.LittleEndian
	out := make([]byte, base, int(base)+64*len(entries))
	copy(out, ldCacheMagic)
	le.PutUint32(out[20:], uint32(len(entries)))
	out[28] = ldCacheLittleEndian
	for i, e := range entries {
		value := intern(e.Path)
		// Like ldconfig, point the key into the path's tail when the file
		// is named by its soname.
		key := value + uint32(len(e.Path)-len(e.Soname))
		if !strings.HasSuffix(e.Path, "/"+e.Soname) {
			key = intern(e.Soname)
		}
		ent := out[ldCacheHeaderSize+i*ldCacheEntrySize:]
		le.PutUint32(ent[0:], uint32(e.Flags))
		le.PutUint32(ent[4:], key)
		le.PutUint32(ent[8:], value)
		le.PutUint64(ent[16:], e.Hwcap)
	}
	le.PutUint32(out[24:], uint32(strs.Len()))
	return append(out, strs.Bytes()...)
}

// parseLDCache decodes a new-format ld.so.cache, keeping the entries in
// file order.
func parseLDCache(b []byte) ([]ldCacheEntry, error) {
	if len(b) < ldCacheHeaderSize || string(b[:len(ldCacheMagic)]) != ldCacheMagic {
		return nil, errors.New("not a glibc-ld.so.cache1.1 file")
	}
	le := binary.LittleEndian
	if b[28]&3 != ldCacheLittleEndian {
		return nil, fmt.Errorf("ld.so.cache endianness flag %d, want %d (little endian)", b[28]&3, ldCacheLittleEndian)
	}
	n := int(le.Uint32(b[20:]))
	if n > (len(b)-ldCacheHeaderSize)/ldCacheEntrySize {
		return nil, fmt.Errorf("ld.so.cache claims %d entries in %d bytes", n, len(b))
	}
	str := func(off uint32) (string, error) {
		if int(off) >= len(b) {
			return "", fmt.Errorf("string offset %d beyond end of ld.so.cache", off)
		}
		end := bytes.IndexByte(b[off:], 0)
		if end < 0 {
			return "", fmt.Errorf("unterminated string at offset %d of ld.so.cache", off)
		}
		return string(b[off : int(off)+end]), nil
	}
	entries := make([]ldCacheEntry, 0, n)
	for i := range n {
		ent := b[ldCacheHeaderSize+i*ldCacheEntrySize:]
		key, err := str(le.Uint32(ent[4:]))
		if err != nil {
			return nil, err
		}
		value, err := str(le.Uint32(ent[8:]))
		if err != nil {
			return nil, err
		}
		entries = append(entries, ldCacheEntry{
			Soname: key,
			Path:   value,
			Flags:  int32(le.Uint32(ent[0:])),
			Hwcap:  le.Uint64(ent[16:]),
		})
	}
	return entries, nil
}
