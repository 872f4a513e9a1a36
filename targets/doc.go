// Package targets owns the declarative side of kiln: the kiln.yaml schema
// (config.go), its strict decoding with the KILN_* and --set overrides
// (decode.go) and validation (validate.go), the Target (libc × base ×
// platform) a service ships as and the build environment of each row
// (plan.go), and the whole decision of SPEC §2 (decide.go): Expand turns a
// config into rows and refuses what the config alone rules out; Decide
// turns those rows and the Facts (facts.go) into the Plan, with every
// refusal and warning. A refusal is decided in decide.go and nowhere else.
// kiln lock's edit of the file (lock.go) lives here too, next to the
// schema it edits.
//
// It decides; it does not do. Expand and Decide are pure. The facts are
// gathered by the caller (build.Prepare), with the two parts that need no
// registry from here: FindTools (PATH, and `npm root -g` for zig) and
// ListCgo (`go list`, whose answers it keeps in kiln's cache). Nothing here
// runs a compiler, touches a registry or writes outputs.
package targets
