package verify

import (
	"fmt"
)

// Status is a check's verdict.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Warn Status = "warn"
	Skip Status = "skip" // the check cannot run here; the evidence says why
)

// Finding is one check's result: its id from SPEC §4, the verdict and one
// line of evidence a person can act on.
type Finding struct {
	ID       string `json:"id"`
	Status   Status `json:"status"`
	Evidence string `json:"evidence"`
}

// Report is every check on one platform image.
type Report struct {
	Image    string    `json:"image"`
	Platform string    `json:"platform"`
	Binary   string    `json:"binary"`
	Libc     string    `json:"libc"` // none, glibc, musl: expected, or inferred from the binary
	Passed   bool      `json:"passed"`
	Checks   []Finding `json:"checks"`
	DNSLoad  *LoadStat `json:"dns_load,omitempty"`
}

// LoadStat is what the dns_load run measured.
type LoadStat struct {
	Lookups   int     `json:"lookups"`
	Succeeded int     `json:"succeeded"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
}

func (r *Report) add(id string, st Status, format string, args ...any) {
	r.Checks = append(r.Checks, Finding{ID: id, Status: st, Evidence: fmt.Sprintf(format, args...)})
}

// finish sets Passed: false exactly when some check failed.
func (r *Report) finish() {
	r.Passed = true
	for _, f := range r.Checks {
		if f.Status == Fail {
			r.Passed = false
		}
	}
}

// Failures returns the failed checks.
func (r *Report) Failures() []Finding {
	var out []Finding
	for _, f := range r.Checks {
		if f.Status == Fail {
			out = append(out, f)
		}
	}
	return out
}

// Find returns the finding with id, if the report has it.
func (r *Report) Find(id string) (Finding, bool) {
	for _, f := range r.Checks {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}
