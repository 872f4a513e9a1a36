package verify

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The host's cache was written by the real ldconfig: kiln's parser must
// read exactly what `ldconfig -p` reads from it.
func TestParseLdCacheMatchesLdconfig(t *testing.T) {
	data, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil {
		t.Skip("this host has no /etc/ld.so.cache")
	}
	out, err := exec.Command("ldconfig", "-p").Output()
	if err != nil {
		t.Skip("ldconfig -p failed: ", err)
	}
	c, err := parseLdCache(data)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n")[1:] {
		// "	libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " (")
		if !ok || !strings.Contains(rest, " => ") {
			continue
		}
		_, path, _ := strings.Cut(rest, " => ")
		n++
		found := false
		for _, e := range c.entries[name] {
			found = found || e.path == path
		}
		if !found {
			t.Errorf("ldconfig -p lists %s => %s; the parser has %v", name, path, c.entries[name])
		}
	}
	total := 0
	for _, es := range c.entries {
		total += len(es)
	}
	if n == 0 || total != n {
		t.Errorf("parser has %d entries, ldconfig -p lists %d", total, n)
	}
	if got := c.best("libc.so.6", "amd64"); got != "/lib/x86_64-linux-gnu/libc.so.6" {
		t.Errorf("best(libc.so.6, amd64) = %q", got)
	}
	if got := c.best("libc.so.6", "arm64"); got != "" {
		t.Errorf("an amd64 cache should give arm64 nothing, got %q", got)
	}
}

func TestParseLdCacheRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "glibc-ld.so.cache1.1", "ld.so-1.7.0\x00\xff\xff\xff\xff", "glibc-ld.so.cache1.1" + strings.Repeat("\xff", 40)} {
		if _, err := parseLdCache([]byte(in)); err == nil {
			t.Errorf("parseLdCache(%q) accepted garbage", in)
		}
	}
}

func FuzzParseLdCache(f *testing.F) {
	if data, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		f.Add(data)
		if len(data) > 200 {
			f.Add(data[:200])
		}
	}
	f.Add([]byte("glibc-ld.so.cache1.1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseLdCache(data)
		if err == nil {
			_ = c.best("libc.so.6", "amd64")
		}
	})
}

// Every entry pointing at one 4 MiB string must not make the parser
// quadratic (60000 entries x 4 MiB scanned before the bound).
func TestParseLdCacheLongStrings(t *testing.T) {
	d := ldCacheOfOneName(60000, 4<<20)
	// Before the bound this took hours; now the first name is refused.
	_, err := parseLdCache(d)
	if err == nil || !strings.Contains(err.Error(), "entry 0 ") {
		t.Errorf("want the first entry's 4 MiB name refused, got %v", err)
	}
}

// Every entry pointing at one long name (within the bound) must not copy
// it per entry: 60000 entries and a 4000-byte name made 460 MiB out of a
// 1.5 MB file. The names share one copy of the file, so the allocations
// do not grow with the entries.
func TestParseLdCacheSharedName(t *testing.T) {
	const n = 60000
	d := ldCacheOfOneName(n, 4001)
	var c *ldCache
	allocs := testing.AllocsPerRun(1, func() {
		var err error
		if c, err = parseLdCache(d); err != nil {
			t.Fatal(err)
		}
	})
	if len(c.entries) != 1 || len(c.entries[strings.Repeat("x", 4000)]) != n {
		t.Fatalf("want %d entries under one 4000-byte name, got %d names", n, len(c.entries))
	}
	if allocs > n/100 {
		t.Errorf("parseLdCache made %.0f allocations for %d entries naming one string", allocs, n)
	}
}

// ldCacheOfOneName is a new-format ld.so.cache of n entries whose key and
// value all point at one name of size-1 bytes.
func ldCacheOfOneName(n, size int) []byte {
	d := make([]byte, 48+n*24+size)
	copy(d, ldCacheNewMagic)
	d[20], d[21] = byte(n&0xff), byte(n>>8)
	for i := 0; i < n; i++ {
		e := d[48+i*24:]
		e[4], e[5], e[6] = byte((48+n*24)&0xff), byte((48+n*24)>>8&0xff), byte((48+n*24)>>16)
		copy(e[8:12], e[4:8])
	}
	for i := 48 + n*24; i < len(d)-1; i++ {
		d[i] = 'x'
	}
	return d
}
