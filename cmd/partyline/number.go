package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newNumberCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "number", Short: "Manage shared numbers and their members"})

	var name string
	add := &cobra.Command{
		Use: "add E164 [--name TEXT]", Short: "Add a shared number", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := admin.NumberArgs{Number: args[0]}
			if cmd.Flags().Changed("name") {
				a.Name = &name
			}
			var v admin.NumberView
			return g.call(cmd, admin.OpNumberAdd, a, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "added number %s\n", v.Number)
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "display name")

	var setName, setDecline string
	set := &cobra.Command{
		Use: "set E164 [--name TEXT] [--decline everywhere|personal]", Short: "Change a number's settings", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := admin.NumberArgs{Number: args[0]}
			if cmd.Flags().Changed("name") {
				a.Name = &setName
			}
			if cmd.Flags().Changed("decline") {
				a.Decline = &setDecline
			}
			var v admin.NumberView
			return g.call(cmd, admin.OpNumberSet, a, &v, func() { showNumber(cmd.OutOrStdout(), v) })
		},
	}
	set.Flags().StringVar(&setName, "name", "", "display name")
	set.Flags().StringVar(&setDecline, "decline", "", "what a phone's decline does: everywhere (ends the call for everyone, the caller hears it: RFC 3261) or personal (only that person's phones stop)")

	list := &cobra.Command{
		Use: "list", Short: "List the numbers you may see", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.NumberView
			return g.call(cmd, admin.OpNumberList, struct{}{}, &v, func() {
				rows := [][]string{}
				for _, n := range v {
					rows = append(rows, []string{n.Number, orDash(n.Name), strconv.Itoa(n.Users) + "/" + strconv.Itoa(n.MaxUsers)})
				}
				table(cmd.OutOrStdout(), "NUMBER\tNAME\tUSERS", rows)
			})
		},
	}

	show := &cobra.Command{
		Use: "show E164", Short: "Show a number and its members", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.NumberView
			return g.call(cmd, admin.OpNumberShow, admin.NumberArgs{Number: args[0]}, &v, func() { showNumber(cmd.OutOrStdout(), v) })
		},
	}

	remove := &cobra.Command{
		Use: "remove E164", Short: "Remove a shared number", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpNumberRemove, admin.NumberArgs{Number: args[0]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}

	cmd.AddCommand(add, set, list, show, remove, newMemberCmd(g), newFlowCmd(g), newSetTrunkCmd(g))
	return cmd
}

func newMemberCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "member", Short: "Manage who shares a number"})
	var role string
	add := &cobra.Command{
		Use: "add E164 USER [--role owner|admin|member]", Short: "Add a user to a number", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.NumberView
			return g.call(cmd, admin.OpMemberAdd, admin.MemberArgs{Number: args[0], User: args[1], Role: role}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "added %s to %s as %s\n", args[1], v.Number, role)
			})
		},
	}
	add.Flags().StringVar(&role, "role", "member", "number role: owner, admin or member")
	remove := &cobra.Command{
		Use: "remove E164 USER", Short: "Remove a user from a number", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpMemberRemove, admin.MemberArgs{Number: args[0], User: args[1]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
	setRole := &cobra.Command{
		Use: "set-role E164 USER owner|admin|member", Short: "Change a member's role on a number", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.NumberView
			return g.call(cmd, admin.OpMemberSetRole, admin.MemberArgs{Number: args[0], User: args[1], Role: args[2]}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is now %s of %s\n", args[1], args[2], v.Number)
			})
		},
	}
	cmd.AddCommand(add, remove, setRole)
	return cmd
}

func showNumber(w io.Writer, v admin.NumberView) {
	fmt.Fprintf(w, "number  %s\nname    %s\nusers   %d of %d\ndecline %s\n\n", v.Number, orDash(v.Name), v.Users, v.MaxUsers, v.Decline)
	rows := [][]string{}
	for _, m := range v.Members {
		devices := "none registered: would not ring"
		if len(m.Devices) > 0 {
			var ds []string
			for _, d := range m.Devices {
				ds = append(ds, d.Transport+" "+d.Source)
			}
			devices = strings.Join(ds, ", ")
			if !m.WouldRing {
				devices += " (not in the call flow: would not ring)"
			}
		}
		rows = append(rows, []string{m.User, m.Role, m.Added.Format("2006-01-02 15:04"), devices})
	}
	table(w, "MEMBER\tROLE\tADDED\tDEVICES", rows)
}
