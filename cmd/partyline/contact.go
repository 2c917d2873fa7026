package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
)

func newContactCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "contact", Short: "The workspace's shared address book"})
	var c inbox.Contact
	add := &cobra.Command{
		Use: "add NAME --phone E164 [--phone E164]... [--company C] [--email E] [--note N]", Short: "Add a contact", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Name = args[0]
			var v []inbox.Contact
			return g.call(cmd, admin.OpContactAdd, admin.ContactArgs{Contacts: []inbox.Contact{c}}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "added contact %s (%s) as %s\n", v[0].Name, strings.Join(v[0].Phones, ", "), v[0].ID)
			})
		},
	}
	add.Flags().StringArrayVar(&c.Phones, "phone", nil, "phone number, E.164 (repeatable)")
	add.Flags().StringVar(&c.Company, "company", "", "company")
	add.Flags().StringVar(&c.Email, "email", "", "email address")
	add.Flags().StringVar(&c.Note, "note", "", "note")
	add.MarkFlagRequired("phone")

	list := &cobra.Command{
		Use: "list", Short: "List contacts by name", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []inbox.Contact
			return g.call(cmd, admin.OpContactList, struct{}{}, &v, func() {
				rows := [][]string{}
				for _, c := range v {
					rows = append(rows, []string{c.ID, c.Name, strings.Join(c.Phones, " "), orDash(c.Company), orDash(c.Email)})
				}
				table(cmd.OutOrStdout(), "ID\tNAME\tPHONES\tCOMPANY\tEMAIL", rows)
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a contact", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpContactRemove, admin.ContactArgs{ID: args[0]}, &v, func() { fmt.Fprintln(cmd.OutOrStdout(), v.Done) })
		},
	}
	imp := &cobra.Command{
		Use: "import FILE.vcf|FILE.csv", Short: "Add every contact of a vCard or CSV file (all or none)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return failure{err}
			}
			defer f.Close()
			parse := inbox.ParseVCards
			switch strings.ToLower(filepath.Ext(args[0])) {
			case ".csv":
				parse = inbox.ParseCSV
			case ".vcf", ".vcard":
			default:
				return failure{fmt.Errorf("%s: use a .vcf or .csv file", args[0])}
			}
			cs, err := parse(f)
			if err != nil {
				return failure{fmt.Errorf("%s: %w", args[0], err)}
			}
			if len(cs) == 0 {
				return failure{fmt.Errorf("%s: no contacts in the file", args[0])}
			}
			var v []inbox.Contact
			return g.call(cmd, admin.OpContactAdd, admin.ContactArgs{Contacts: cs}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "imported %d contacts\n", len(v))
			})
		},
	}
	var format string
	export := &cobra.Command{
		Use: "export --format vcf|csv", Short: "Write the address book to standard output", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "vcf" && format != "csv" {
				return fmt.Errorf("bad --format %q: use vcf or csv", format)
			}
			var v []inbox.Contact
			if err := g.callQuiet(cmd, admin.OpContactList, struct{}{}, &v); err != nil {
				return err
			}
			var buf bytes.Buffer
			write := inbox.WriteVCards
			if format == "csv" {
				write = inbox.WriteCSV
			}
			if err := write(&buf, v); err != nil {
				return failure{err}
			}
			_, err := cmd.OutOrStdout().Write(buf.Bytes())
			return err
		},
	}
	export.Flags().StringVar(&format, "format", "vcf", "vcf or csv")
	cmd.AddCommand(add, list, remove, imp, export)
	return cmd
}
