package verify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ldCache is a parsed /etc/ld.so.cache: for each library name, the paths
// the cache maps it to, with the flags that tell their ABI.
type ldCache struct {
	entries map[string][]ldCacheEntry
}

type ldCacheEntry struct {
	flags int32
	path  string
}

const (
	ldCacheNewMagic = "glibc-ld.so.cache1.1"
	ldCacheOldMagic = "ld.so-1.7.0"
	maxLdCacheSize  = 8 << 20 // real caches are tens of kilobytes
	maxLdCacheLibs  = 1 << 16
	maxLdCacheName  = 4096 // PATH_MAX: a longer string is malformed
)

// parseLdCache parses glibc's cache format, the new one
// ("glibc-ld.so.cache1.1") alone or after the old one. glibc's loader reads
// this file at run time (never ld.so.conf), so it is what kiln must read
// too. The file comes from an untrusted image: every offset is checked.
func parseLdCache(data []byte) (*ldCache, error) {
	if len(data) > maxLdCacheSize {
		return nil, fmt.Errorf("ld.so.cache is %d bytes, more than %d", len(data), maxLdCacheSize)
	}
	start := 0
	if bytes.HasPrefix(data, []byte(ldCacheOldMagic)) {
		// Old header: magic (11 bytes + pad to 12), nlibs uint32, then
		// nlibs entries of 12 bytes; the new format follows, 8-aligned.
		if len(data) < 16 {
			return nil, errors.New("ld.so.cache: truncated old header")
		}
		n := uint64(binary.LittleEndian.Uint32(data[12:16]))
		off := 16 + n*12
		off = (off + 7) &^ 7
		if off > uint64(len(data)) {
			return nil, errors.New("ld.so.cache: old format only (no glibc-ld.so.cache1.1 section)")
		}
		start = int(off)
	}
	d := data[start:]
	if !bytes.HasPrefix(d, []byte(ldCacheNewMagic)) {
		return nil, errors.New("ld.so.cache: not a glibc-ld.so.cache1.1 file")
	}
	// Header: magic[17] version[3] nlibs u32 len_strings u32 flags u8
	// pad[3] extension_offset u32 unused[3]u32 = 48 bytes.
	const headerSize = 48
	if len(d) < headerSize {
		return nil, errors.New("ld.so.cache: truncated header")
	}
	var order binary.ByteOrder = binary.LittleEndian
	if d[28] == 3 { // flags: cache_file_new_flags_endian_big
		order = binary.BigEndian
	}
	nlibs := order.Uint32(d[20:24])
	if nlibs > maxLdCacheLibs || uint64(headerSize)+uint64(nlibs)*24 > uint64(len(d)) {
		return nil, fmt.Errorf("ld.so.cache: %d entries do not fit in the file", nlibs)
	}
	// Names are substrings of one copy of the file: entries may all
	// point at one long string, which must not be copied for each.
	ds := string(d)
	str := func(off uint32) (string, bool) {
		// Offsets are relative to the new-format header.
		if uint64(off) >= uint64(len(ds)) {
			return "", false
		}
		// Bounded scan: every entry may point at one long string.
		rest := ds[off:]
		if len(rest) > maxLdCacheName {
			rest = rest[:maxLdCacheName]
		}
		end := strings.IndexByte(rest, 0)
		if end < 0 {
			return "", false
		}
		return rest[:end], true
	}
	c := &ldCache{entries: map[string][]ldCacheEntry{}}
	for i := uint32(0); i < nlibs; i++ {
		e := d[headerSize+int(i)*24:]
		flags := int32(order.Uint32(e[0:4]))
		key, ok1 := str(order.Uint32(e[4:8]))
		value, ok2 := str(order.Uint32(e[8:12]))
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("ld.so.cache: entry %d names a string outside the file or longer than %d bytes", i, maxLdCacheName)
		}
		c.entries[key] = append(c.entries[key], ldCacheEntry{flags: flags, path: value})
	}
	return c, nil
}

// ldCacheArchFlags are the flag values ldconfig gives libraries of each
// architecture (glibc's dl-cache.h); the loader takes only matching ones.
var ldCacheArchFlags = map[string]int32{
	"amd64":   0x0303, // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
	"arm64":   0x0a03, // FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
	"386":     0x0003, // FLAG_ELF_LIBC6
	"arm":     0x0903, // FLAG_ELF_LIBC6 | FLAG_ARM_LIBHF
	"ppc64le": 0x0503, // FLAG_ELF_LIBC6 | FLAG_POWERPC_LIB64
	"s390x":   0x0403, // FLAG_ELF_LIBC6 | FLAG_S390_LIB64
	"riscv64": 0x1003, // FLAG_ELF_LIBC6 | FLAG_RISCV_FLOAT_ABI_DOUBLE
}

// best returns the one path the cache gives an arch loader for name (the
// first entry with the arch's flags; glibc tries only that one), or "".
func (c *ldCache) best(name, arch string) string {
	want, known := ldCacheArchFlags[arch]
	for _, e := range c.entries[name] {
		if !known || e.flags == want {
			return e.path
		}
	}
	return ""
}
