// Command partyline is the partyline server and its admin CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // refused or invalid
	exitUsage   = 2
	envDataDir  = "PARTYLINE_DATA"
	programName = "partyline"
)

// failure marks an error that is the operation's answer (exit 1), as
// opposed to a usage error cobra found (exit 2).
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

// globals are the flags every command takes.
type globals struct {
	data   string
	as     string
	output string
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	g := &globals{}
	root := newRoot(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var f failure
	if errors.As(err, &f) {
		fmt.Fprintf(os.Stderr, "%s: %s\n", programName, f.err)
		return exitFailed
	}
	fmt.Fprintf(os.Stderr, "%s: %s\nRun '%s --help' for usage.\n", programName, err, cmd.CommandPath())
	return exitUsage
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   programName,
		Short: "Self-hosted shared phone numbers: SIP server, shared inbox and admin CLI",
		Long: `partyline serves shared phone numbers: a call to the number rings every
member's phones at once, the first to answer takes it, and calls, voicemail
and texts land in one shared inbox.

The admin commands work the same whether or not "partyline serve" runs on the
data directory: with a server they go through its admin socket and take
effect at once; without one they open the data directory themselves.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("bad --output %q: use table or json", g.output)
			}
			return nil
		},
	}
	dataDefault := os.Getenv(envDataDir)
	if dataDefault == "" {
		dataDefault = config.DefaultDataDir
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.data, "data", dataDefault, "data directory (env "+envDataDir+")")
	pf.StringVar(&g.as, "as", "", "act as this user, with their rights (default: the local operator, who may do everything)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(newServeCmd(g), newUserCmd(g), newPlanCmd(g), newNumberCmd(g), newTrunkCmd(g), newRegistrationsCmd(g), newCallsCmd(g), newVoicemailCmd(g), newContactCmd(g), newInboxCmd(g), newMessageCmd(g))
	root.AddCommand(newTokenCmd(g))
	root.AddCommand(newWebhookCmd(g))
	return root
}

func (g *globals) config() config.Config {
	return config.Config{DataDir: g.data}
}

// connect reaches the server running on the data directory or, when none
// runs, opens the directory and runs the operations in this process; done
// releases what it took.
func (g *globals) connect() (c *admin.Client, done func(), err error) {
	cfg := g.config()
	c, err = admin.Dial(cfg)
	if err == nil {
		return c, func() { c.Close() }, nil
	}
	if !errors.Is(err, admin.ErrNoServer) {
		return nil, nil, err
	}
	d, err := openData(cfg)
	if err != nil {
		return nil, nil, err
	}
	return admin.Local(d.service(nil)), func() { d.Close() }, nil
}

// callQuiet runs one admin operation, leaving the printing to the caller.
func (g *globals) callQuiet(cmd *cobra.Command, op string, args any, out any) error {
	c, done, err := g.connect()
	if err != nil {
		return failure{err}
	}
	defer done()
	if err := c.Call(context.Background(), g.as, op, args, out); err != nil {
		return failure{err}
	}
	return nil
}

// call runs one admin operation and prints its result with show (table) or
// as JSON.
func (g *globals) call(cmd *cobra.Command, op string, args any, out any, show func()) error {
	c, done, err := g.connect()
	if err != nil {
		return failure{err}
	}
	defer done()
	if err := c.Call(context.Background(), g.as, op, args, out); err != nil {
		return failure{err}
	}
	if g.output == "json" {
		return printJSON(cmd.OutOrStdout(), out)
	}
	show()
	return nil
}

// group makes cmd a command that only holds subcommands: alone it prints
// its help; with an unknown subcommand it is a usage error.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
	return cmd
}
