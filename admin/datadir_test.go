package admin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline/config"
)

// nobody is the uid the tests give files that belong to "another user".
const nobody = 65534

// needRoot skips a test that chowns files, except under CI, where it must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test chowns files to another uid: run it as root (CI runs every test as root)")
	}
	t.Skip("not root: cannot chown to another uid")
}

// fakeAdmin listens on dir's admin.sock (mode 0600, as Listen makes it) and
// reports what any client sent it.
type fakeAdmin struct {
	ln  *net.UnixListener
	got chan string // one entry per connection: what it received
}

func listenFake(t *testing.T, dir string) *fakeAdmin {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: config.Config{DataDir: dir}.SocketPath(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAdmin{ln: ln, got: make(chan string, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				var all []byte
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					all = append(all, buf[:n]...)
					if err != nil {
						break
					}
				}
				f.got <- string(all)
			}()
		}
	}()
	return f
}

// heardNothing checks that no client sent the fake a single byte.
func (f *fakeAdmin) heardNothing(t *testing.T) {
	t.Helper()
	for {
		select {
		case s := <-f.got:
			if s != "" {
				t.Fatalf("the planted socket received %d bytes: %.60q", len(s), s)
			}
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// addOlga is what root runs in the attack: partyline user add with a
// password, through Dial as the CLI does.
func addOlga(cfg config.Config, uid int) error {
	c, err := dial(cfg, uid)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return c.Call(ctx, "", OpUserAdd, UserArgs{Name: "olga", Password: "s3cret-pass", Role: "owner"}, nil)
}

// TestDataDirOpenToOthers is issue 14's finding 11: a data directory that
// group or others may write to (where another user could bind admin.sock)
// is refused by the server and the CLI alike, saying how to fix it.
func TestDataDirOpenToOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770, 0o703} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		cfg := config.Config{DataDir: dir}
		want := "data directory " + dir + " is writable by group/others"
		if err := PrepareDataDir(dir); err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), ": chmod 700 "+dir) {
			t.Errorf("PrepareDataDir on a %04o directory: %v", mode, err)
		}
		f := listenFake(t, dir) // another user got there first
		if err := addOlga(cfg, os.Geteuid()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a command on a %04o directory: %v", mode, err)
		}
		f.heardNothing(t)
		f.ln.Close()
		if _, err := os.Stat(cfg.DBPath()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the data file was made in a %04o directory: %v", mode, err)
		}
	}
	// A directory partyline creates is 0700, and fine; so is 0755.
	dir := filepath.Join(t.TempDir(), "new", "data")
	if err := PrepareDataDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("new data directory has mode %04o, want 0700", fi.Mode().Perm())
	}
	os.Chmod(dir, 0o755)
	if err := PrepareDataDir(dir); err != nil {
		t.Fatalf("a 0755 directory: %v", err)
	}
	if _, err := Dial(config.Config{DataDir: dir}); !errors.Is(err, ErrNoServer) {
		t.Fatalf("Dial a 0755 directory where no server runs: %v", err)
	}
}

// TestDataDirOtherOwner: a data directory another user owns is refused.
func TestDataDirOtherOwner(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	want := "data directory " + dir + " belongs to uid 65534, not to uid 0 running partyline: run partyline as its owner"
	if err := PrepareDataDir(dir); err == nil || err.Error() != want {
		t.Errorf("PrepareDataDir: %v", err)
	}
	if _, err := Dial(config.Config{DataDir: dir}); err == nil || err.Error() != want {
		t.Errorf("Dial: %v", err)
	}
}

// TestSocketOtherOwner: an admin socket that belongs to another user is
// refused before the CLI connects to it, let alone sends a command.
func TestSocketOtherOwner(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f := listenFake(t, dir)
	sock := config.Config{DataDir: dir}.SocketPath()
	if err := os.Chown(sock, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	err := addOlga(config.Config{DataDir: dir}, os.Geteuid())
	if err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "admin socket "+sock+" belongs to uid 65534, not to uid 0") {
		t.Errorf("a command to another user's socket: %v", err)
	}
	f.heardNothing(t)

	// Not a socket at all: refused too.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(config.Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "is not a socket: remove it") {
		t.Fatalf("Dial a regular file: %v", err)
	}
}

// TestSocketPeerOtherUser: a socket that looks right (ours, in our
// directory) but served by a process of another user is refused after
// connecting and before a byte is sent. The test's own process (root)
// plays the other user: the directory and socket belong to uid 65534,
// who is the CLI here.
func TestSocketPeerOtherUser(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	f := listenFake(t, dir)
	sock := config.Config{DataDir: dir}.SocketPath()
	for _, p := range []string{dir, sock} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	err := addOlga(config.Config{DataDir: dir}, nobody)
	if err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "admin socket "+sock+" is served by uid 0 (pid ") || !strings.Contains(err.Error(), "not by uid 65534") {
		t.Errorf("a command to a socket served by another user: %v", err)
	}
	f.heardNothing(t)
}

// TestCheckPeer checks the peer's uid without root: the test's listener
// runs as us, so it passes for our uid and fails for any other.
func TestCheckPeer(t *testing.T) {
	dir := t.TempDir()
	listenFake(t, dir)
	sock := config.Config{DataDir: dir}.SocketPath()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := checkPeer(c, sock, os.Geteuid()); err != nil {
		t.Fatalf("our own server: %v", err)
	}
	if err := checkPeer(c, sock, os.Geteuid()+1); err == nil || !errors.Is(err, ErrUnsafe) {
		t.Fatalf("a server of another uid: %v", err)
	}
}

// TestConnectOwnServer: the checks let the real thing through.
func TestConnectOwnServer(t *testing.T) {
	s := openService(t)
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	c, err := Dial(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Remote {
		t.Fatal("not connected to the running server")
	}
	if err := c.Call(t.Context(), "", OpUserList, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
}
