package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/api"
	"github.com/partyline/partyline/guard"
)

// webFlags are serve's HTTP flags.
type webFlags struct {
	addrs     []string
	cert, key string
}

// demoHTTP is where --demo serves HTTP when no --http is given.
const demoHTTP = "127.0.0.1:8080"

func (f *webFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.addrs, "http", nil, "address to serve the web inbox and its API on, HOST:PORT (repeatable; none by default, "+demoHTTP+" with --demo)")
	fs.StringVar(&f.cert, "tls-cert", "", "certificate file (PEM, with its chain) to serve HTTPS with; needs --tls-key")
	fs.StringVar(&f.key, "tls-key", "", "private key file (PEM) of --tls-cert")
}

// webServer is serve's HTTP side: the API on each --http address.
type webServer struct {
	handler http.Handler
	lns     []net.Listener
	tls     *tls.Config // nil: plain HTTP
	log     *slog.Logger
}

// openWeb builds the API and listens on every address (nothing is served
// until Serve), so a bad flag or a busy port stops serve before SIP starts.
// Plain HTTP on an address other than loopback is allowed with a warning:
// passwords and session cookies would cross the network in the clear.
func openWeb(f webFlags, demo bool, d *data, svc *admin.Service, bans *guard.Bans, log *slog.Logger) (*webServer, error) {
	addrs := f.addrs
	if len(addrs) == 0 && demo {
		addrs = []string{demoHTTP}
	}
	w := &webServer{log: log}
	switch {
	case (f.cert == "") != (f.key == ""):
		return nil, errors.New("--tls-cert and --tls-key go together: give both for HTTPS, or neither")
	case f.cert != "":
		if len(addrs) == 0 {
			return nil, errors.New("--tls-cert: give --http ADDR to serve HTTPS on")
		}
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		w.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	if len(addrs) == 0 {
		return w, nil
	}
	h, err := api.New(api.Config{Service: svc, Directory: d.stores.Directory, DB: d.db, Log: log, Bans: bans})
	if err != nil {
		return nil, err
	}
	w.handler = h
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("--http %s: %w", a, err)
		}
		w.lns = append(w.lns, ln)
		if ap, err := netip.ParseAddrPort(ln.Addr().String()); w.tls == nil && (err != nil || !ap.Addr().IsLoopback()) {
			log.Warn("serving HTTP without TLS on an address other than loopback: passwords and session cookies cross the network in the clear; give --tls-cert and --tls-key, or serve behind a TLS proxy", "addr", ln.Addr().String())
		}
	}
	return w, nil
}

func (w *webServer) close() {
	for _, ln := range w.lns {
		ln.Close()
	}
}

// URLs are the addresses served, as URLs.
func (w *webServer) URLs() []string {
	scheme := "http"
	if w.tls != nil {
		scheme = "https"
	}
	var out []string
	for _, ln := range w.lns {
		out = append(out, scheme+"://"+ln.Addr().String()+"/")
	}
	return out
}

// Serve serves until ctx ends, then shuts down (requests in progress get 5
// s). A listener that fails calls fail (the process then stops, like for
// SIP). wait returns once every server has stopped.
func (w *webServer) Serve(ctx context.Context, fail func()) (wait func() error) {
	var wg sync.WaitGroup
	errs := make([]error, len(w.lns))
	for i, ln := range w.lns {
		if w.tls != nil {
			ln = tls.NewListener(ln, w.tls)
		}
		srv := &http.Server{
			Handler:           w.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelWarn),
		}
		wg.Add(2)
		stopped := make(chan struct{})
		go func() {
			defer wg.Done()
			defer close(stopped)
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("http listener stopped", "addr", ln.Addr().String(), "err", err)
				errs[i] = fmt.Errorf("http %s: %w", ln.Addr(), err)
				fail()
			}
		}()
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
			case <-stopped:
			}
			shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(shut)
		}()
	}
	if urls := w.URLs(); len(urls) > 0 {
		w.log.Info("http serving", "url", fmt.Sprint(urls))
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

// demoHowTo tells how to log in to the demo over HTTP.
func (w *webServer) demoHowTo(d admin.Demo) string {
	urls := w.URLs()
	if len(urls) == 0 {
		return ""
	}
	alice := d.Users[1]
	u := urls[0]
	return fmt.Sprintf(`
The API serves on %[1]s (the web pages come later); log in as any user above, e.g. alice:
  curl -c alice.jar -H 'Content-Type: application/json' -d '{"user":"alice","password":"%[2]s"}' %[1]sapi/v1/session
  curl -b alice.jar %[1]sapi/v1/conversations
or give a script a token: partyline token create alice --name script
`, u, alice.Password)
}
