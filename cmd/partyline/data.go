package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"

	"github.com/partyline/partyline/acl"
	"github.com/partyline/partyline/admin"
	"github.com/partyline/partyline/config"
	"github.com/partyline/partyline/inbox"
	"github.com/partyline/partyline/location"
	"github.com/partyline/partyline/webhook"
)

// errBusy: another process holds the data directory.
var errBusy = errors.New("data directory in use")

// data is the workspace's one bbolt file and the stores on it: what serve
// runs on, and what a command opens itself when no server runs.
type data struct {
	cfg    config.Config // defaults filled
	db     *bolt.DB
	stores admin.Stores
}

// openData opens (creating when needed) the data directory of cfg and
// takes the bbolt file's lock, waiting at most cfg.LockTimeout. A data
// directory that another user owns or that group or others may write to
// is refused (admin.ErrUnsafe): whoever can write it can plant the admin
// socket.
func openData(cfg config.Config) (*data, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := admin.PrepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	db, err := bolt.Open(cfg.DBPath(), 0o600, &bolt.Options{Timeout: cfg.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by another partyline process (a server starting or stopping?): try again in a moment", errBusy, cfg.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", cfg.DBPath(), err)
	}
	d := &data{cfg: cfg, db: db}
	if d.stores.Directory, err = acl.Open(db, acl.Options{Realm: cfg.Realm}); err != nil {
		db.Close()
		return nil, err
	}
	if d.stores.Location, err = location.Open(db, location.Options{}); err != nil {
		db.Close()
		return nil, err
	}
	if d.stores.Inbox, err = inbox.Open(db, nil); err != nil {
		db.Close()
		return nil, err
	}
	if d.stores.Webhooks, err = webhook.Open(db, nil); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// routeKey is the key the SIP server signs its Record-Route tokens with,
// made once and kept in the data file, so calls in progress survive a
// restart of the server.
func (d *data) routeKey() ([]byte, error) {
	var key []byte
	err := d.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("partyline.keys"))
		if err != nil {
			return err
		}
		if k := b.Get([]byte("route")); len(k) == 32 {
			key = append([]byte(nil), k...)
			return nil
		}
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		return b.Put([]byte("route"), key)
	})
	return key, err
}

// service is the admin service over the stores; log may be nil.
func (d *data) service(log *slog.Logger) *admin.Service {
	return admin.New(d.cfg, d.stores, log)
}

// Close releases the data file.
func (d *data) Close() error { return d.db.Close() }
