package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newPlanCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "plan", Short: "Show or change the workspace plan"})
	show := func(cmd *cobra.Command, v admin.PlanView) func() {
		return func() {
			fmt.Fprintf(cmd.OutOrStdout(), "plan %s: at most %d users per number, %d people ring at once\n", v.Plan, v.MaxUsersPerNumber, v.RingCap)
		}
	}
	cmd.AddCommand(&cobra.Command{
		Use: "show", Short: "Show the plan and its limits", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v admin.PlanView
			return g.call(cmd, admin.OpPlanShow, struct{}{}, &v, func() { show(cmd, v)() })
		},
	}, &cobra.Command{
		Use: "set starter|business", Short: "Change the plan (workspace owners only)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.PlanView
			return g.call(cmd, admin.OpPlanSet, admin.PlanArgs{Plan: args[0]}, &v, func() { show(cmd, v)() })
		},
	})
	return cmd
}
