package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "token", Short: "Manage API tokens (Authorization: Bearer, for scripts)"})
	var name string
	create := &cobra.Command{
		Use:   "create USER --name NAME",
		Short: "Make an API token that acts as USER; it is printed once, only its hash is kept",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.TokenCreated
			return g.call(cmd, admin.OpTokenCreate, admin.TokenArgs{User: args[0], Name: name}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "token %s (%s) for %s; shown only now, keep it secret:\n%s\n", v.ID, printable(v.Name), v.User, v.Token)
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for, e.g. crm (unique per user)")
	create.MarkFlagRequired("name")

	var user string
	list := &cobra.Command{
		Use: "list [--user USER]", Short: "List API tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.TokenView
			return g.call(cmd, admin.OpTokenList, admin.TokenArgs{User: user}, &v, func() {
				rows := [][]string{}
				for _, t := range v {
					rows = append(rows, []string{t.ID, t.User, t.Name, t.Created.Local().Format(time.DateTime)})
				}
				table(cmd.OutOrStdout(), "ID\tUSER\tNAME\tCREATED", rows)
			})
		},
	}
	list.Flags().StringVar(&user, "user", "", "only this user's tokens")

	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an API token at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpTokenRevoke, admin.TokenArgs{ID: args[0]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
