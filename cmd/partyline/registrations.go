package main

import (
	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newRegistrationsCmd(g *globals) *cobra.Command {
	var a admin.RegistrationArgs
	cmd := &cobra.Command{
		Use:   "registrations [--user USER]",
		Short: "List registered devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.Registration
			return g.call(cmd, admin.OpRegistrations, a, &v, func() {
				rows := [][]string{}
				for _, r := range v {
					rows = append(rows, []string{r.User, r.Contact, r.Source, r.Transport, orDash(r.UserAgent), r.ExpiresAt.Local().Format("2006-01-02 15:04:05")})
				}
				table(cmd.OutOrStdout(), "USER\tCONTACT\tSOURCE\tTRANSPORT\tUSER AGENT\tEXPIRES", rows)
			})
		},
	}
	cmd.Flags().StringVar(&a.User, "user", "", "only this user's devices")
	return cmd
}
