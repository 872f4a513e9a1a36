// Package needc has only cgo code: without cgo it does not build.
package needc

// int answer(void) { return 42; }
import "C"

func Answer() int { return int(C.answer()) }
