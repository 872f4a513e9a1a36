// Command demokey writes a cosign key pair for `make demo` into a directory,
// encrypted with COSIGN_PASSWORD, unless one is already there. Real releases
// use keys made with `cosign generate-key-pair` or a KMS.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnbuild/kiln/sign"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: demokey DIR (password from COSIGN_PASSWORD)")
		os.Exit(2)
	}
	dir := os.Args[1]
	if _, err := os.Stat(filepath.Join(dir, "cosign.key")); err == nil {
		return
	}
	priv, pub, err := sign.GenerateKeyPair([]byte(os.Getenv("COSIGN_PASSWORD")))
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "cosign.key"), priv, 0o600)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "cosign.pub"), pub, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demokey:", err)
		os.Exit(1)
	}
}
