package admin

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Who may reach the data directory and its admin socket: only the user
// partyline runs as. Another local user who can write the directory can
// bind admin.sock first (or swap it) and capture every command sent to it,
// passwords included; so the directory must belong to us and be closed to
// group and others, the socket must belong to us, and the process that
// answers on it must run as us.

// ErrUnsafe: the data directory or its admin socket is open to another
// local user.
var ErrUnsafe = errors.New("unsafe data directory")

// checkDataDir refuses a data directory that another user owns or that
// group or others may write to.
func checkDataDir(dir string, uid int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return refuse("data directory %s is not a directory: give --data a directory", dir)
	}
	if owner := fileUID(fi); owner != uid {
		return refuse("data directory %s belongs to uid %d, not to uid %d running partyline: run partyline as its owner", dir, owner, uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return refuse("data directory %s is writable by group/others (mode %04o): chmod 700 %s", dir, perm, dir)
	}
	return nil
}

// checkSocket refuses an admin socket that is not a socket of ours, before
// anything is sent to it. It returns an error wrapping os.ErrNotExist when
// there is none.
func checkSocket(path string, uid int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return refuse("admin socket %s is not a socket: remove it (a partyline server makes its own)", path)
	}
	if owner := fileUID(fi); owner != uid {
		return refuse("admin socket %s belongs to uid %d, not to uid %d: another user may be capturing partyline commands; stop what listens there, remove it and restart partyline serve", path, owner, uid)
	}
	return nil
}

// checkPeer refuses a connection to the admin socket at path whose server
// does not run as uid.
func checkPeer(c net.Conn, path string, uid int) error {
	peer, pid, err := peerUID(c)
	if err != nil {
		return refuse("admin socket %s: cannot tell which user serves it (%v): stop the server to use the CLI on this system", path, err)
	}
	if peer != uid {
		return refuse("admin socket %s is served by uid %d (pid %d), not by uid %d: another user may be capturing partyline commands; stop that process and restart partyline serve", path, peer, pid, uid)
	}
	return nil
}

// unsafeError is an ErrUnsafe with the whole message of its own.
type unsafeError struct{ msg string }

func (e *unsafeError) Error() string        { return e.msg }
func (e *unsafeError) Is(target error) bool { return target == ErrUnsafe }

func refuse(format string, args ...any) error {
	return &unsafeError{fmt.Sprintf(format, args...)}
}

func fileUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// PrepareDataDir makes the data directory (mode 0700) when it is missing
// and refuses one that another user owns or that group or others may write
// to (ErrUnsafe): whoever can write it can plant the admin socket. Call it
// before opening anything in the directory.
func PrepareDataDir(dir string) error {
	return prepareDataDir(dir, os.Geteuid())
}

// prepareDataDir is PrepareDataDir for the user uid.
func prepareDataDir(dir string, uid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	return checkDataDir(dir, uid)
}
