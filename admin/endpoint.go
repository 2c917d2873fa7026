package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/partyline/partyline/config"
)

// maxRequest bounds one admin request body.
const maxRequest = 16 << 20 // a greeting travels as PCM

const callPath = "/v1/call"

// Listen opens the admin socket of the service's data directory (mode 0600),
// replacing a stale one: the caller holds the data file's lock, so no other
// server can be using it.
func (s *Service) Listen() (net.Listener, error) {
	path := s.cfg.SocketPath()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale admin socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve answers admin requests on ln until ctx ends, then removes the socket.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	os.Remove(s.cfg.SocketPath())
	<-errc
	return err
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != callPath {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequest))
	var resp Response
	if err := dec.Decode(&req); err != nil {
		resp = Response{Error: &Error{Kind: "invalid", Message: "bad admin request"}}
	} else {
		resp = s.Handle(r.Context(), req)
	}
	w.Header().Set("Content-Type", "application/json")
	if resp.Error == nil && resp.Result != nil {
		// The result is JSON we made: send it as it is (encoding/json would
		// re-scan and compact it, which costs on long call histories).
		w.Write([]byte(`{"result":`))
		w.Write(resp.Result)
		w.Write([]byte("}\n"))
		return
	}
	json.NewEncoder(w).Encode(resp)
}

// Client runs requests against a running server (Dial) or a service in
// this process (Local).
type Client struct {
	http  *http.Client // remote when set
	local *Service
	// Remote reports whether a running server answers.
	Remote bool
}

// ErrNoServer: no server answers on the data directory's admin socket
// (none runs, or one stopped without removing it): open the directory and
// use Local.
var ErrNoServer = errors.New("no partyline server runs on the data directory")

// Dial reaches the server running on cfg's data directory through its
// socket; ErrNoServer when none answers there. A data directory or socket
// another local user could have planted or tampered with is refused
// (ErrUnsafe) before anything is sent: the directory must be ours and
// closed to group and others, the socket ours, and the server behind it
// running as us.
func Dial(cfg config.Config) (*Client, error) {
	return dial(cfg, os.Geteuid())
}

// dial is Dial for the user uid.
func dial(cfg config.Config, uid int) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkDataDir(cfg.DataDir, uid); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	sock := cfg.SocketPath()
	switch err := checkSocket(sock, uid); {
	case errors.Is(err, os.ErrNotExist):
		return nil, ErrNoServer
	case err != nil:
		return nil, err
	}
	dialSock := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			return nil, err
		}
		if err := checkPeer(conn, sock, uid); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	conn, err := dialSock(ctx)
	cancel()
	if errors.Is(err, ErrUnsafe) {
		return nil, err
	}
	if err != nil {
		return nil, ErrNoServer // a stale socket: the server crashed
	}
	conn.Close()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dialSock(ctx) },
	}}
	return &Client{http: hc, Remote: true}, nil
}

// Local runs requests on svc in this process, when no server runs.
func Local(svc *Service) *Client {
	return &Client{local: svc}
}

// Close releases the connection to a server; a local client holds
// nothing (its caller closes the data file).
func (c *Client) Close() error {
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
	return nil
}

// Call runs op as the acting user as with args, decoding the result into out.
// A refused or failed operation returns *Error.
func (c *Client) Call(ctx context.Context, as, op string, args, out any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	req := Request{As: as, Op: op, Args: raw}
	var resp Response
	if c.local != nil {
		resp = c.local.Handle(ctx, req)
	} else {
		body, _ := json.Marshal(req)
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://partyline"+callPath, bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Type", "application/json")
		r, err := c.http.Do(hr)
		if err != nil {
			return fmt.Errorf("admin endpoint: %w", err)
		}
		defer r.Body.Close()
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&resp); err != nil {
			return fmt.Errorf("admin endpoint: bad answer: %w", err)
		}
	}
	if resp.Error != nil {
		return resp.Error
	}
	if out != nil && len(resp.Result) > 0 {
		return json.Unmarshal(resp.Result, out)
	}
	return nil
}
