package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/doctor"
)

func newDoctor() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Show which toolchains and runtimes this machine has, and what each enables",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tools := doctor.Check(cmd.Context())
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), doctorDocument{SchemaVersion: doctorSchemaVersion, Tools: tools})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TOOL\tSTATUS\tENABLES\tINSTALL")
			for _, t := range tools {
				status, install := "ok "+t.Found, ""
				if t.Found == "" {
					status, install = "missing", t.Install
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, status, t.Enables, install)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print one JSON document: {"schemaVersion", "tools": [...]}`)
	return cmd
}
