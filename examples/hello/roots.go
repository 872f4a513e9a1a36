//go:build embedroots

package main

// On scratch there is no CA bundle: built with -tags embedroots, the
// binary carries Mozilla's roots and uses them when the system has none.
import _ "golang.org/x/crypto/x509roots/fallback"
