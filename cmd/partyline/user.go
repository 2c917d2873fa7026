package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "user", Short: "Manage the workspace's users"})
	var a admin.UserArgs

	add := &cobra.Command{
		Use:   "add NAME --password PW [--role owner|admin|member] [--email EMAIL]",
		Short: "Add a user (their SIP user name is NAME)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.Name = args[0]
			pw, err := password(a.Password)
			if err != nil {
				return failure{err}
			}
			a.Password = pw
			var v admin.UserView
			return g.call(cmd, admin.OpUserAdd, a, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "added user %s (workspace %s)\n", v.Name, v.Role)
			})
		},
	}
	add.Flags().StringVar(&a.Password, "password", "", "SIP password, at least 8 characters (\"-\" reads it from standard input)")
	add.Flags().StringVar(&a.Role, "role", "member", "workspace role: owner, admin or member")
	add.Flags().StringVar(&a.Email, "email", "", "email address")
	add.MarkFlagRequired("password")

	list := &cobra.Command{
		Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.UserView
			return g.call(cmd, admin.OpUserList, struct{}{}, &v, func() {
				rows := [][]string{}
				for _, u := range v {
					rows = append(rows, []string{u.Name, u.Role, orDash(u.Email), orDash(strings.Join(u.Numbers, ","))})
				}
				table(cmd.OutOrStdout(), "NAME\tROLE\tEMAIL\tNUMBERS", rows)
			})
		},
	}

	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove a user and their memberships", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpUserRemove, admin.UserArgs{Name: args[0]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}

	setRole := &cobra.Command{
		Use: "set-role NAME owner|admin|member", Short: "Change a user's workspace role", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.UserView
			return g.call(cmd, admin.OpUserSetRole, admin.UserArgs{Name: args[0], Role: args[1]}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is now workspace %s\n", v.Name, v.Role)
			})
		},
	}

	var newPW string
	setPW := &cobra.Command{
		Use: "set-password NAME --password PW", Short: "Change a user's SIP password", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := password(newPW)
			if err != nil {
				return failure{err}
			}
			var v admin.Done
			return g.call(cmd, admin.OpUserSetPassword, admin.UserArgs{Name: args[0], Password: pw}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
	setPW.Flags().StringVar(&newPW, "password", "", "new SIP password, at least 8 characters (\"-\" reads it from standard input)")
	setPW.MarkFlagRequired("password")

	cmd.AddCommand(add, list, remove, setRole, setPW, newSetDefaultNumberCmd(g))
	return cmd
}

// password returns pw, or for "-" the first line of standard input.
func password(pw string) (string, error) {
	if pw != "-" {
		return pw, nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("--password -: no password on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
