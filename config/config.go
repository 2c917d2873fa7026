package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// Config is the whole server configuration. The zero value of a field means
// its default, named in the comment.
type Config struct {
	// DataDir holds the workspace's one bbolt file and the admin socket.
	// Default "./partyline-data".
	DataDir string
	// SIP addresses to listen on, UDP and TCP each. Default ["0.0.0.0:5060"].
	SIP []string
	// Realm for digest authentication. Default: the stored realm, or the
	// host name for a new workspace.
	Realm string
	// LockTimeout is how long to wait for the data file when another process
	// holds it. Default 3 s.
	LockTimeout time.Duration
}

// Defaults.
const (
	DefaultDataDir     = "./partyline-data"
	DefaultSIP         = "0.0.0.0:5060"
	DefaultLockTimeout = 3 * time.Second
)

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if len(c.SIP) == 0 {
		c.SIP = []string{DefaultSIP}
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	return c
}

// Validate checks the settings; call it on WithDefaults' result.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("empty data directory: set --data DIR"))
	}
	for _, a := range c.SIP {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("bad --sip %q: use HOST:PORT, e.g. 0.0.0.0:5060 or [::1]:5060", a))
		}
	}
	if len(c.SocketPath()) > 100 {
		errs = append(errs, fmt.Errorf("data directory path %q is too long for a unix socket: use a shorter --data", c.DataDir))
	}
	return errors.Join(errs...)
}

// DBPath is the bbolt file.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, "partyline.db") }

// SocketPath is the admin endpoint's unix socket.
func (c Config) SocketPath() string { return filepath.Join(c.DataDir, "admin.sock") }
