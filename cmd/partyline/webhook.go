package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

func newWebhookCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "webhook", Short: "Manage outgoing webhooks: the inbox's events POSTed, signed, to a URL"})
	var events, number string
	add := &cobra.Command{
		Use:   "add URL --events TYPE,... [--number E164]",
		Short: "Send events to URL; prints the signing secret once",
		Long: `Send the inbox's events of the given types (of one number, or of all) to URL
as signed JSON POSTs, in order, retried for 24 h; the running server delivers.
Event types: ` + strings.Join(inbox.FeedTypes, ", ") + `.
Each request carries Partyline-Signature: t=UNIX,v1=HEX, HEX being
HMAC-SHA256 keyed with the secret (as printed) over "UNIX." and the body.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := admin.WebhookArgs{URL: args[0], Number: number}
			for e := range strings.SplitSeq(events, ",") {
				if e = strings.TrimSpace(e); e != "" {
					a.Events = append(a.Events, e)
				}
			}
			var v admin.WebhookCreated
			return g.call(cmd, admin.OpWebhookAdd, a, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "added webhook %s: %s to %s\nsigning secret, shown only now, keep it secret:\n%s\n",
					v.ID, strings.Join(v.Events, ","), printable(v.URL), v.Secret)
			})
		},
	}
	add.Flags().StringVar(&events, "events", "", "event types to send, comma-separated: "+strings.Join(inbox.FeedTypes, ","))
	add.Flags().StringVar(&number, "number", "", "only this number's events (default: every number's)")
	add.MarkFlagRequired("events")

	list := &cobra.Command{
		Use: "list", Short: "List webhooks (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []admin.WebhookView
			return g.call(cmd, admin.OpWebhookList, struct{}{}, &v, func() {
				rows := [][]string{}
				for _, h := range v {
					rows = append(rows, []string{h.ID, h.URL, strings.Join(h.Events, ","), orDash(h.Number), strconv.Itoa(h.Pending), h.Created.Local().Format(time.DateTime)})
				}
				table(cmd.OutOrStdout(), "ID\tURL\tEVENTS\tNUMBER\tPENDING\tCREATED", rows)
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a webhook and the events waiting for it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpWebhookRemove, admin.WebhookArgs{ID: args[0]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
	var limit int
	deliveries := &cobra.Command{
		Use: "deliveries ID [--limit N]", Short: "A webhook's last delivery attempts, newest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.WebhookDeliveries
			return g.call(cmd, admin.OpWebhookDeliveries, admin.WebhookArgs{ID: args[0], Limit: limit}, &v, func() {
				rows := [][]string{}
				for _, a := range v.Attempts {
					status, next := "-", "-"
					if a.Status != 0 {
						status = strconv.Itoa(a.Status)
					}
					if a.Next != nil {
						next = a.Next.Local().Format(time.DateTime)
					}
					rows = append(rows, []string{a.At.Local().Format(time.DateTime), a.Event, a.Type, strconv.Itoa(a.Try),
						a.Outcome, status, orDash(a.Error), next})
				}
				table(cmd.OutOrStdout(), "TIME\tEVENT\tTYPE\tTRY\tOUTCOME\tSTATUS\tERROR\tNEXT TRY", rows)
				fmt.Fprintf(cmd.OutOrStdout(), "%d event(s) waiting for %s\n", v.Pending, printable(v.URL))
			})
		},
	}
	deliveries.Flags().IntVar(&limit, "limit", 20, "how many attempts to show (at most the last 100 are kept)")
	cmd.AddCommand(add, list, remove, deliveries)
	return cmd
}
