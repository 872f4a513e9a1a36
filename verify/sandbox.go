package verify

import (
	"os"
	"path/filepath"
	"sort"
	"time"
)

// The sandbox's data and helpers that do not depend on Linux; the sandbox
// itself is sandbox_linux.go.

// sandboxConfig is what the parent tells the sandbox init (fd 3).
type sandboxConfig struct {
	Root       string
	Argv       []string
	Env        []string
	UID, GID   int
	Dir        string
	Timeout    time.Duration
	Runs       int // how many times to run argv (dns_load), at most Parallel at once
	Parallel   int
	DNS        bool
	LimitMem   bool // RLIMIT_DATA; off under qemu, which maps large regions itself
	MaxOutput  int
	Devices    []string // device files to bind from the host (/dev/null, …)
	Groups     []int    // supplementary groups of the image user
	Unprivileg bool     // the parent is not root: only uid 0 exists in the namespace
}

// runResult is one run of the binary.
type runResult struct {
	Exit     int    `json:"exit"`     // exit code; -1 when killed by a signal or not started
	Signal   string `json:"signal"`   // the signal that ended it, if any
	Running  bool   `json:"running"`  // still running at the timeout, then killed
	StartErr string `json:"starterr"` // the exec failed: the kernel could not start it
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Millis   float64
}

// sandboxResult is what the sandbox init reports (fd 4).
type sandboxResult struct {
	Setup      string // a setup step failed: the runs did not happen
	Runs       []runResult
	DNSQueries int64
	DNSAnswers int64
	DNSSeen    []dnsQuery // what the first queries for ProbeName looked like
}

// hostIDBase is where the namespace's ids start on the host when kiln runs
// as root: far above real users, so the image's root is nobody here.
const hostIDBase = 1_500_000_000

// percentile returns the p-th percentile (0..100) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// sandboxTempDir picks where image roots are written: a directory whose
// every ancestor the sandbox's unprivileged host id may traverse (a path
// through a 0700 directory, such as a test's TMPDIR, would lock it out).
func sandboxTempDir(preferred string) string {
	for _, d := range []string{preferred, os.TempDir(), "/tmp", "/var/tmp"} {
		if d != "" && traversable(d) {
			return d
		}
	}
	return os.TempDir()
}

func traversable(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := abs; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}
