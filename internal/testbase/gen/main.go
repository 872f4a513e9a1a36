// Command gen writes kiln's local stand-in base images as an OCI image
// layout and prints one line per entry:
//
//	<name> oci:<dir>:<name>@<digest>
//
// Usage: go run ./internal/testbase/gen -o dist/bases
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kilnbuild/kiln/internal/testbase"
)

func main() {
	out := flag.String("o", "dist/bases", "directory of the OCI image layout (replaced)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "gen: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}

	digests, err := testbase.Write(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, name := range testbase.Names() {
		fmt.Printf("%s oci:%s:%s@%s\n", name, *out, name, digests[name])
	}
}
