package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newTrunkCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "trunk", Short: "Manage carrier trunks"})
	var a admin.TrunkArgs
	add := &cobra.Command{
		Use:   "add NAME --address HOST:PORT [--allow IP|IP:PORT|CIDR]...",
		Short: "Add a carrier trunk; traffic from --allow sources is trusted as the carrier's",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.Name = args[0]
			var v admin.TrunkView
			return g.call(cmd, admin.OpTrunkAdd, a, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "added trunk %s to %s, trusting %s\n", v.Name, v.Address, orDash(strings.Join(v.Allow, ", ")))
			})
		},
	}
	add.Flags().StringVar(&a.Address, "address", "", "where calls and texts to the carrier go, HOST:PORT")
	add.Flags().StringArrayVar(&a.Allow, "allow", nil, "source trusted as this carrier: IP, IP:PORT or CIDR (repeatable)")
	add.MarkFlagRequired("address")
	list := &cobra.Command{
		Use: "list", Short: "List trunks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.TrunkView
			return g.call(cmd, admin.OpTrunkList, struct{}{}, &v, func() {
				rows := [][]string{}
				for _, t := range v {
					rows = append(rows, []string{t.Name, t.Address, orDash(strings.Join(t.Allow, ","))})
				}
				table(cmd.OutOrStdout(), "NAME\tADDRESS\tTRUSTED SOURCES", rows)
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove a trunk", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpTrunkRemove, admin.TrunkArgs{Name: args[0]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}
