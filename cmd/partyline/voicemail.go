package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/media"
)

func newVoicemailCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "voicemail", Short: "Voicemail of the numbers you belong to"})
	var number string
	list := &cobra.Command{
		Use: "list [--number E164]", Short: "List voicemail, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v []inbox.Voicemail
			return g.call(cmd, admin.OpVoicemailList, admin.VoicemailArgs{Number: number}, &v, func() {
				rows := [][]string{}
				for _, m := range v {
					var heard []string
					for _, h := range m.HeardBy {
						heard = append(heard, h.User)
					}
					state := "new"
					if !m.New() {
						state = "heard by " + strings.Join(heard, ",")
					}
					rows = append(rows, []string{m.ID, m.ReceivedAt.Local().Format("2006-01-02 15:04:05"), m.Number, m.From, fmt.Sprintf("%.1fs", m.DurationS), state})
				}
				table(cmd.OutOrStdout(), "ID\tRECEIVED\tNUMBER\tFROM\tLENGTH\tSTATE", rows)
			})
		},
	}
	list.Flags().StringVar(&number, "number", "", "only this number's voicemail")

	var out string
	export := &cobra.Command{
		Use: "export ID --out FILE.wav", Short: "Save a message as a 16-bit 8 kHz mono WAV (marks it heard by you)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Refused before the export, which marks the message heard.
			if err := checkOutPath(out); err != nil {
				return failure{err}
			}
			var v admin.VoicemailAudio
			if err := g.callQuiet(cmd, admin.OpVoicemailAudio, admin.VoicemailArgs{ID: args[0]}, &v); err != nil {
				return err
			}
			samples := make([]int16, len(v.PCM)/2)
			for i := range samples {
				samples[i] = int16(uint16(v.PCM[2*i]) | uint16(v.PCM[2*i+1])<<8)
			}
			var buf bytes.Buffer
			if err := media.EncodeWAV(&buf, samples); err != nil {
				return failure{err}
			}
			if err := writeFileAtomic(out, buf.Bytes()); err != nil {
				return failure{fmt.Errorf("writing %s: %w", out, err)}
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), v.Voicemail)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %.1f s from %s to %s\n", v.Voicemail.DurationS, printable(v.Voicemail.From), printable(out))
			return nil
		},
	}
	export.Flags().StringVar(&out, "out", "", "WAV file to write")
	export.MarkFlagRequired("out")

	heard := &cobra.Command{
		Use: "heard ID", Short: "Mark a message heard by you", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v inbox.Voicemail
			return g.call(cmd, admin.OpVoicemailHeard, admin.VoicemailArgs{ID: args[0]}, &v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "voicemail %s heard\n", v.ID)
			})
		},
	}
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete a message (number owners and admins)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v admin.Done
			return g.call(cmd, admin.OpVoicemailDelete, admin.VoicemailArgs{ID: args[0]}, &v, func() {
				fmt.Fprintln(cmd.OutOrStdout(), v.Done)
			})
		},
	}
	greeting := group(&cobra.Command{Use: "greeting", Short: "The greeting callers hear"})
	var reset bool
	set := &cobra.Command{
		Use: "set E164 FILE.wav | --default", Short: "Set a number's greeting from a WAV file (any rate, mono or stereo, 8/16-bit)", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := admin.VoicemailArgs{Number: args[0], Reset: reset}
			if !reset {
				if len(args) != 2 {
					return fmt.Errorf("give the WAV file, or --default")
				}
				f, err := os.Open(args[1])
				if err != nil {
					return failure{err}
				}
				defer f.Close()
				samples, err := media.DecodeWAV(f)
				if err != nil {
					return failure{fmt.Errorf("%s: %w: use a PCM WAV file (8 or 16-bit, mono or stereo)", args[1], err)}
				}
				a.PCM = make([]byte, 2*len(samples))
				for i, x := range samples {
					a.PCM[2*i], a.PCM[2*i+1] = byte(x), byte(uint16(x)>>8)
				}
			}
			var v admin.Done
			return g.call(cmd, admin.OpGreetingSet, a, &v, func() { fmt.Fprintln(cmd.OutOrStdout(), v.Done) })
		},
	}
	set.Flags().BoolVar(&reset, "default", false, "go back to the built-in greeting")
	greeting.AddCommand(set)
	cmd.AddCommand(list, export, heard, del, greeting)
	return cmd
}
