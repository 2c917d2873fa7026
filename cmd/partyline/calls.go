package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

func newCallsCmd(g *globals) *cobra.Command {
	var a admin.CallArgs
	cmd := &cobra.Command{
		Use:   "calls [--number E164] [--limit N] | calls show ID",
		Short: "Call history of the numbers you belong to, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []inbox.Call
			return g.call(cmd, admin.OpCalls, a, &v, func() {
				rows := [][]string{}
				for _, c := range v {
					by := "-"
					if c.AnsweredBy != nil {
						by = c.AnsweredBy.User
					}
					rows = append(rows, []string{c.ID, c.StartedAt.Local().Format("2006-01-02 15:04:05"), c.Number, c.Direction,
						c.Remote, c.Disposition, by, strconv.Itoa(c.DurationS) + "s"})
				}
				table(cmd.OutOrStdout(), "ID\tSTARTED\tNUMBER\tDIRECTION\tREMOTE\tDISPOSITION\tANSWERED BY\tDURATION", rows)
			})
		},
	}
	cmd.Flags().StringVar(&a.Number, "number", "", "only this number's calls")
	cmd.Flags().IntVar(&a.Limit, "limit", 50, "at most this many calls")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "One call with its branch timeline: who rang, on which device, and what happened",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var c inbox.Call
			return g.call(cmd, admin.OpCallShow, admin.CallArgs{ID: args[0]}, &c, func() { showCall(cmd.OutOrStdout(), c) })
		},
	}
	cmd.AddCommand(show)
	return cmd
}

func showCall(w io.Writer, c inbox.Call) {
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format("15:04:05.000")
	}
	fmt.Fprintf(w, "call         %s\nnumber       %s (%s)\nremote       %s\nstarted      %s\nanswered     %s\nended        %s\nduration     %ds\ndisposition  %s\n",
		c.ID, c.Number, c.Direction, printable(c.Remote), c.StartedAt.Local().Format("2006-01-02 15:04:05"), ts(c.AnsweredAt), ts(c.EndedAt), c.DurationS, c.Disposition)
	if c.AnsweredBy != nil {
		fmt.Fprintf(w, "answered by  %s on %s (%s)\n", c.AnsweredBy.User, printable(c.AnsweredBy.Contact), printable(orDash(c.AnsweredBy.UserAgent)))
	}
	for _, u := range c.Skipped {
		fmt.Fprintf(w, "not rung     %s: no registered device\n", u)
	}
	fmt.Fprintln(w)
	rows := [][]string{}
	for _, b := range c.Branches {
		status := "-"
		if b.Status != 0 {
			status = strconv.Itoa(b.Status)
		}
		rows = append(rows, []string{strconv.Itoa(b.Step + 1), b.User, b.Contact, b.Transport + " " + b.Source, ts(&b.StartedAt), ts(b.EndedAt), b.Outcome, status})
	}
	table(w, "STEP\tUSER\tDEVICE\tVIA\tRANG\tENDED\tOUTCOME\tSTATUS", rows)
}
