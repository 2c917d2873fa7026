package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

func newInboxCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "inbox", Short: "The shared inbox: conversations of calls, voicemail and texts, with internal comments"})

	var la admin.InboxArgs
	list := &cobra.Command{
		Use: "list [--number E164] [--state open|unread|done]", Short: "Conversations, the one with the newest item first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.ConversationView
			return g.call(cmd, admin.OpInboxList, la, &v, func() {
				rows := [][]string{}
				for _, c := range v {
					unread := ""
					if c.Unread {
						unread = "•"
					}
					rows = append(rows, []string{c.ID, c.Number, party(c), c.LastKind + ": " + c.LastSummary,
						c.LastAt.Local().Format("2006-01-02 15:04"), c.State, unread})
				}
				table(cmd.OutOrStdout(), "ID\tNUMBER\tPARTY\tLAST ITEM\tAT\tSTATE\tUNREAD", rows)
			})
		},
	}
	list.Flags().StringVar(&la.Number, "number", "", "only this number's conversations")
	list.Flags().StringVar(&la.State, "state", "", "only conversations in this state: open, unread or done")
	list.Flags().IntVar(&la.Limit, "limit", 50, "at most this many conversations")

	var limit int
	show := &cobra.Command{
		Use: "show CONV_ID", Short: "A conversation's timeline (records that you opened it)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d admin.ConversationDetail
			return g.call(cmd, admin.OpInboxShow, admin.InboxArgs{ID: args[0], Limit: limit}, &d, func() { showConversation(cmd.OutOrStdout(), d) })
		},
	}
	show.Flags().IntVar(&limit, "limit", 200, "at most this many of the newest timeline entries")

	var text string
	comment := &cobra.Command{
		Use: "comment ITEM_ID --text TEXT", Short: "An internal comment on a call, voicemail or text, or a reply to a comment (only the number's members see it)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if text == "-" {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, inbox.MaxComment+1))
				if err != nil {
					return failure{err}
				}
				text = string(b)
			}
			var ev inbox.Event
			return g.call(cmd, admin.OpInboxComment, admin.InboxArgs{ID: args[0], Text: text}, &ev, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "comment %s added to %s\n", ev.ID, ev.Parent)
			})
		},
	}
	comment.Flags().StringVar(&text, "text", "", "the comment (- reads it from standard input)")
	comment.MarkFlagRequired("text")

	cmd.AddCommand(list, show, comment)
	for _, st := range []struct{ state, short string }{
		{inbox.StateDone, "Archive a conversation (new inbound activity reopens it)"},
		{inbox.StateOpen, "Reopen a conversation"},
		{inbox.StateUnread, "Mark a conversation unread for the team"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use: st.state + " CONV_ID", Short: st.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var v admin.ConversationView
				return g.call(cmd, admin.OpInboxState, admin.InboxArgs{ID: args[0], State: st.state}, &v, func() {
					fmt.Fprintf(cmd.OutOrStdout(), "conversation %s with %s is %s\n", v.ID, printable(party(v)), v.State)
				})
			},
		})
	}
	return cmd
}

func party(c admin.ConversationView) string {
	if c.ContactName != "" {
		return c.ContactName + " (" + c.Party + ")"
	}
	return c.Party
}

func showConversation(w io.Writer, d admin.ConversationDetail) {
	fmt.Fprintf(w, "conversation %s\nnumber       %s\nparty        %s\nstate        %s\n", d.ID, d.Number, printable(party(d.ConversationView)), d.State)
	for _, o := range d.OpenedBy {
		fmt.Fprintf(w, "opened by    %s at %s\n", o.User, o.At.Local().Format("2006-01-02 15:04:05"))
	}
	for _, t := range d.Typing {
		who := t.Who + " (teammate)"
		if !t.Member {
			who = t.Who + " (them)"
		}
		fmt.Fprintf(w, "typing now   %s\n", who)
	}
	fmt.Fprintln(w)
	rows := [][]string{}
	for _, e := range d.Timeline {
		rows = append(rows, []string{e.At.Local().Format("2006-01-02 15:04:05"), orDash(e.ID), e.Kind, orDash(who(e)), describe(e)})
	}
	table(w, "AT\tITEM\tKIND\tWHO\tWHAT", rows)
}

func who(e admin.Entry) string {
	switch {
	case e.User != "":
		return e.User
	case e.Inbound:
		return "them"
	}
	return ""
}

// describe is one line about a timeline entry.
func describe(e admin.Entry) string {
	switch {
	case e.Call != nil:
		c := e.Call
		s := c.Direction + " call, " + c.Disposition
		if c.AnsweredBy != nil {
			s += " by " + c.AnsweredBy.User
		}
		if c.DurationS > 0 {
			s += fmt.Sprintf(", %ds", c.DurationS)
		}
		return s
	case e.Voicemail != nil:
		return fmt.Sprintf("voicemail, %.1f s", e.Voicemail.DurationS)
	case e.Message != nil:
		m := e.Message
		s := fmt.Sprintf("%q", oneLine(m.Text))
		switch {
		case m.Direction == "outbound":
			s += " (" + m.Status + ")"
		case len(m.Deliveries) > 0:
			n := 0
			for _, d := range m.Deliveries {
				if d.Outcome == inbox.DeliveryDelivered {
					n++
				}
			}
			s += fmt.Sprintf(" (on %d of %d devices)", n, len(m.Deliveries))
		}
		return s
	case e.Kind == inbox.KindComment:
		s := oneLine(e.Text)
		if e.Parent != e.Thread {
			s = "↳ " + s
		}
		return s + "  (on " + e.Parent + ")"
	case e.Kind == inbox.KindOpened:
		return "opened"
	case e.Kind == inbox.KindState:
		return "marked " + e.State
	case e.ID != "":
		return e.Kind + " (deleted)"
	}
	return e.Kind
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 70 {
		return string(r[:69]) + "…"
	}
	return s
}

func newMessageCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "message", Short: "Texts from the shared numbers"})
	var a admin.MessageArgs
	send := &cobra.Command{
		Use: "send --number E164 --to E164 --text TEXT", Short: "Text an outside number as the shared number, in your name (needs the running server)",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m inbox.Message
			return g.call(cmd, admin.OpMessageSend, a, &m, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "sent %s to %s as %s (message %s)\n", fmt.Sprintf("%q", oneLine(m.Text)), m.Party, m.Number, m.ID)
			})
		},
	}
	send.Flags().StringVar(&a.Number, "number", "", "the shared number to text as")
	send.Flags().StringVar(&a.To, "to", "", "the outside number (E.164)")
	send.Flags().StringVar(&a.Text, "text", "", "the text")
	for _, f := range []string{"number", "to", "text"} {
		send.MarkFlagRequired(f)
	}
	cmd.AddCommand(send)
	return cmd
}
