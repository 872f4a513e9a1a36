package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/anyimage"
	"github.com/kilnbuild/kiln/targets"
)

func newSign() *cobra.Command {
	var cfg targets.SignConfig
	cmd := &cobra.Command{
		Use:   "sign IMAGE@DIGEST --key KEY",
		Short: "Sign one image or index in a registry by digest (a tag is refused: signing a tag is a race)",
		Long: "The key is a cosign key file (password from COSIGN_PASSWORD), env://VAR or a KMS URI.\n" +
			"Check it with: cosign verify --key cosign.pub --insecure-ignore-tlog=true IMAGE@DIGEST",
		Args: oneArg("IMAGE@DIGEST"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if cfg.Key == "" && !cfg.Keyless {
				return usageError{fmt.Errorf("kiln sign needs --key KEY (a cosign key file, env://VAR or a KMS URI) or --keyless")}
			}
			d, err := anyimage.Sign(cmd.Context(), a[0], cfg, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s\n", d)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.Key, "key", "", "cosign private key: a file, env://VAR or a KMS URI")
	cmd.Flags().BoolVar(&cfg.TLog, "tlog", false, "upload the signature to the transparency log (needs network)")
	cmd.Flags().BoolVar(&cfg.Keyless, "keyless", false, "sign keyless with Fulcio and Rekor (needs network)")
	return cmd
}
