package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
)

func newFlowCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "flow", Short: "Who rings, in which order, for calls to a number"})
	var a admin.FlowArgs
	set := &cobra.Command{
		Use:   "set E164 --step USER[,USER...][:SECONDS]... [--then voicemail|hangup] | --default",
		Short: "Set the number's call flow (steps ring in order; at most 10 people per step)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.Number = args[0]
			var v admin.FlowView
			return g.call(cmd, admin.OpFlowSet, a, &v, func() { showFlow(cmd.OutOrStdout(), v) })
		},
	}
	set.Flags().StringArrayVar(&a.Steps, "step", nil, "a step: USER[,USER...][:SECONDS] (default 25 s; repeatable, in order)")
	set.Flags().StringVar(&a.Then, "then", "voicemail", "after the last step: voicemail or hangup")
	set.Flags().BoolVar(&a.Reset, "default", false, "go back to the default flow: every member, 10 at a time")
	show := &cobra.Command{
		Use: "show E164", Short: "Show the number's call flow", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.FlowView
			return g.call(cmd, admin.OpFlowShow, admin.FlowArgs{Number: args[0]}, &v, func() { showFlow(cmd.OutOrStdout(), v) })
		},
	}
	cmd.AddCommand(set, show)
	return cmd
}

func showFlow(w io.Writer, v admin.FlowView) {
	kind := "custom"
	if v.Default {
		kind = "default: every member, 10 at a time, in the order they joined"
	}
	fmt.Fprintf(w, "call flow of %s (%s)\n", v.Number, kind)
	for i, st := range v.Steps {
		fmt.Fprintf(w, "  step %d: %s for %d s\n", i+1, strings.Join(st.Users, ", "), st.Seconds)
	}
	fmt.Fprintf(w, "  then: %s\n", v.Then)
}

func newSetTrunkCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "set-trunk E164 TRUNK", Short: "Choose the trunk that carries the number's outbound calls", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpNumberSetTrunk, admin.TrunkOfArgs{Number: args[0], Trunk: args[1]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
}

func newSetDefaultNumberCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "set-default-number USER E164", Short: "Choose the number a user calls and texts out as", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpUserSetDefault, admin.TrunkOfArgs{User: args[0], Number: args[1]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
}
