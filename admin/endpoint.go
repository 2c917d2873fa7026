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

// Client runs requests against a running server or, when none runs, against
// the data directory opened in this process.
type Client struct {
	http  *http.Client // remote when set
	local *Service
	// Remote reports whether a running server answers.
	Remote bool
}

// Connect reaches the server of cfg's data directory through its socket, or
// opens the directory itself when no server listens there. A data directory
// or socket another local user could have planted or tampered with is
// refused (ErrUnsafe) before anything is sent: the directory must be ours
// and closed to group and others, the socket ours, and the server behind
// it running as us.
func Connect(cfg config.Config) (*Client, error) {
	return connect(cfg, os.Geteuid())
}

// connect is Connect for the user uid.
func connect(cfg config.Config, uid int) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkDataDir(cfg.DataDir, uid); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	sock := cfg.SocketPath()
	switch err := checkSocket(sock, uid); {
	case errors.Is(err, os.ErrNotExist): // no server
	case err != nil:
		return nil, err
	default:
		dial := func(ctx context.Context) (net.Conn, error) {
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
		conn, err := dial(ctx)
		cancel()
		if err == nil {
			conn.Close()
			hc := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			}}
			return &Client{http: hc, Remote: true}, nil
		}
		if errors.Is(err, ErrUnsafe) {
			return nil, err
		}
		// A stale socket (the server crashed): open the directory.
	}
	svc, err := open(cfg, nil, uid)
	if err != nil {
		return nil, err
	}
	return &Client{local: svc}, nil
}

// Close releases the data directory (local) or the connection (remote).
func (c *Client) Close() error {
	if c.local != nil {
		return c.local.Close()
	}
	c.http.CloseIdleConnections()
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
