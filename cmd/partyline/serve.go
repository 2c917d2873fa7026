package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/guard"
	"github.com/partyline/partyline/sip"
	"github.com/partyline/partyline/webhook"
)

func newServeCmd(g *globals) *cobra.Command {
	var realm string
	var demo bool
	var listen []string
	var rtpPorts string
	var unsolicitedMWI bool
	var pprofAddr string
	var unprovenRate float64
	var digestURIServer bool
	var vmPerNumber int
	var demoSeeded *admin.Demo
	var web webFlags
	cmd := &cobra.Command{
		Use:   "serve [--sip ADDR]... [--http ADDR]... [--tls-cert FILE --tls-key FILE] [--realm REALM] [--rtp-ports LOW-HIGH] [--demo]",
		Short: "Run the server on the data directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if os.Getenv("GOGC") == "" {
				// The server's heap is small (about 100 MiB at 9,000
				// registrations/s) and its garbage short-lived: collecting
				// at 5x the live heap instead of 2x takes a GC cost that
				// held registrations back (bench/reg.sh) for a few MiB.
				debug.SetGCPercent(400)
			}
			if pprofAddr != "" {
				stopProfiler, err := serveProfiler(pprofAddr, log)
				if err != nil {
					return failure{err}
				}
				defer stopProfiler()
			}
			cfg := g.config()
			cfg.Realm = realm
			cfg.SIP = listen
			cfg.LockTimeout = 10 * time.Second
			data, err := openData(cfg)
			if err != nil {
				return failure{err}
			}
			defer data.Close()
			svc := data.service(log)
			// Calls a crash or kill left open can no longer end: close them.
			if n, err := data.stores.Inbox.CloseInterrupted(time.Now(), 24*time.Hour); err != nil {
				return failure{fmt.Errorf("closing interrupted call records: %w", err)}
			} else if n > 0 {
				log.Warn("closed call records left open by the last stop", "calls", n)
			}
			if demo {
				d, seeded, err := svc.SeedDemo()
				if err != nil {
					return failure{fmt.Errorf("seeding the demo: %w", err)}
				}
				if seeded {
					fmt.Fprint(cmd.OutOrStdout(), d.String())
					demoSeeded = &d
				} else {
					log.Warn("demo not seeded: the workspace is not empty", "data", data.cfg.DataDir)
				}
			}
			ln, err := svc.Listen()
			if err != nil {
				return failure{err}
			}
			ib := data.stores.Inbox
			sipSrv := sip.New(sip.Deps{Directory: data.stores.Directory, Location: data.stores.Location,
				Calls: ib, Texts: ib, Voicemail: ib, Contacts: ib})
			sipSrv.Listen = data.cfg.SIP
			if sipSrv.RouteKey, err = data.routeKey(); err != nil {
				return failure{err}
			}
			sipSrv.Log = log
			sipSrv.RTPPorts = rtpPorts
			sipSrv.NoUnsolicitedMWI = !unsolicitedMWI
			sipSrv.UnprovenRate = unprovenRate
			sipSrv.DigestURIServer = digestURIServer
			sipSrv.VoicemailPerNumber = vmPerNumber
			// One ban table for SIP digest and web logins: a source that
			// guesses passwords over both is counted once.
			bans := guard.NewBans(5, 20, time.Minute, 5*time.Minute)
			sipSrv.Bans = bans
			svc.OnVoicemailChange = sipSrv.NotifyMWI
			svc.SendText = sipSrv.SendText
			svc.Typing = sipSrv.Typing
			webSrv, err := openWeb(web, demo, data, svc, bans, log)
			if err != nil {
				ln.Close()
				return failure{err}
			}
			if err := sipSrv.Start(); err != nil {
				ln.Close()
				webSrv.close()
				return failure{err}
			}
			if demoSeeded != nil {
				// How to try it, with the port the server really listens on.
				fmt.Fprint(cmd.OutOrStdout(), demoHowTo(*demoSeeded, sipSrv.Addrs()[0]))
				fmt.Fprint(cmd.OutOrStdout(), webSrv.demoHowTo(*demoSeeded))
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// HTTP: a listener failing stops serve, as for SIP.
			webWait := webSrv.Serve(ctx, stop)
			hooksDone := make(chan error, 1) // webhooks: delivered off the inbox's feed until ctx ends
			go func() {
				hooksDone <- (&webhook.Deliverer{Feed: data.stores.Inbox, Store: data.stores.Webhooks, Log: log}).Run(ctx)
			}()
			var addrs []string
			for _, a := range sipSrv.Addrs() {
				addrs = append(addrs, a.String())
			}
			sipDone := make(chan error, 1)
			go func() {
				// SIP stopping on its own (a listener failed) ends the
				// admin socket too: the process exits 1, for a supervisor
				// to see and restart.
				sipDone <- sipSrv.Serve(ctx)
				stop()
			}()
			log.Info("partyline ready", "data", data.cfg.DataDir, "admin", data.cfg.SocketPath(),
				"sip", strings.Join(addrs, ","), "realm", data.stores.Directory.Realm())
			adminErr := svc.Serve(ctx, ln)
			stop()
			sipErr := <-sipDone
			if err := errors.Join(adminErr, sipErr, webWait(), <-hooksDone); err != nil {
				return failure{err}
			}
			log.Info("partyline stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&realm, "realm", "", "digest realm (default: the stored realm, or the host name for a new workspace)")
	cmd.Flags().StringArrayVar(&listen, "sip", nil, "address to serve SIP on, UDP and TCP (repeatable; default 0.0.0.0:5060)")
	cmd.Flags().StringVar(&rtpPorts, "rtp-ports", "20000-20999", "UDP port range for voicemail media, LOW-HIGH")
	cmd.Flags().BoolVar(&unsolicitedMWI, "mwi-unsolicited", true, "send message-waiting NOTIFYs to registered phones that did not subscribe")
	cmd.Flags().StringVar(&pprofAddr, "pprof", os.Getenv("PARTYLINE_PPROF"), "serve Go's profiler (net/http/pprof) on this loopback HOST:PORT, e.g. 127.0.0.1:6060 (env PARTYLINE_PPROF)")
	cmd.Flags().Float64Var(&unprovenRate, "unproven-rate", 0, "requests a second one source IP may send without valid credentials (challenges) before it is banned for flooding; 0: the default, 20 (burst 200); -1: no limit, for load tests from one address")
	cmd.Flags().BoolVar(&digestURIServer, "digest-uri-server", false, "also accept digest credentials whose uri is this server's address instead of the Request-URI, as SIPp 3.6 sends them (weaker: such credentials are not bound to a destination)")
	cmd.Flags().IntVar(&vmPerNumber, "voicemail-per-number", 0, "voicemail calls in progress to one shared number at once; more get 486 Busy Here (0: the default, 10)")
	cmd.Flags().BoolVar(&demo, "demo", false, "seed a small demo workspace when the data directory is empty")
	web.register(cmd)
	return cmd
}

func demoHowTo(d admin.Demo, sip netip.AddrPort) string {
	alice := d.Users[1]
	host, port := "127.0.0.1", sip.Port()
	if !sip.Addr().IsUnspecified() {
		host = sip.Addr().String()
	}
	return fmt.Sprintf(`
Register a phone as alice (SIP server %[1]s:%[2]d, user alice, password %[3]s, realm %[4]s):
  sipsak -U -i -C sip:alice@%[1]s:5070 -s sip:alice@%[1]s:%[2]d -u alice -a %[3]s -x 600 -H %[1]s
Call the shared number the way the carrier would, from the trusted trunk address 127.0.0.1:5080:
  sipp -sn uac -s %[5]s %[1]s:%[2]d -p 5080 -i 127.0.0.1 -mi 127.0.0.1 -m 1
Text it the same way (from the repository's folder), then read the shared inbox as alice:
  sipp -sf testdata/sipp/text_trunk_send.xml -s %[5]s %[1]s:%[2]d -p 5080 -i 127.0.0.1 -mi 127.0.0.1 -m 1
  partyline --as alice inbox list
Manage the workspace while the server runs, e.g.:
  partyline number show %[6]s
`, host, port, alice.Password, d.Realm, d.Number[1:], d.Number)
}

// serveProfiler serves net/http/pprof on addr, which must be a loopback
// address: profiles show call ids and numbers in memory.
func serveProfiler(addr string, log *slog.Logger) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	ip, perr := netip.ParseAddr(host)
	if err != nil || perr != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--pprof %q: give a loopback HOST:PORT such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("profiler serving", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}
