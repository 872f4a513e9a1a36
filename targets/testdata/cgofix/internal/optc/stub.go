//go:build !cgo

package optc

func Answer() int { panic("optc: built with CGO_ENABLED=0, needs cgo") }
