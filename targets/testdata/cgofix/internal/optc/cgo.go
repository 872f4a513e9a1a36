//go:build cgo

// Package optc has cgo code and a stub for CGO_ENABLED=0 that compiles
// and fails at run time, the way github.com/mattn/go-sqlite3 does.
package optc

// int answer(void) { return 42; }
import "C"

func Answer() int { return int(C.answer()) }
