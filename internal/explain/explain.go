// Package explain writes kiln's one-line error messages in one shape: what
// went wrong, where, and the fix. It only formats; each package keeps its
// own error types.
package explain

// Message is "subject: problem (fix: fix)", leaving out what is empty.
func Message(subject, problem, fix string) string {
	s := problem
	if subject != "" {
		s = subject + ": " + s
	}
	if fix != "" {
		s += " (fix: " + fix + ")"
	}
	return s
}
