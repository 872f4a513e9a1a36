// Command sbomapp is a tiny program with a few module dependencies; the
// sign tests build it and write an SBOM from its build info.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"
)

func main() {
	g, _ := errgroup.WithContext(context.Background())
	g.Go(func() error {
		_, err := name.ParseReference(os.Args[len(os.Args)-1])
		return err
	})
	fmt.Println(g.Wait())
}
