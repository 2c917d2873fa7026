package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnsafeDataDir is issue 14's finding 11 through the binary: in a data
// directory others may write to, or with an admin socket another user
// planted, "user add --password" sends nothing and says what to fix, and
// serve refuses to start.
func TestUnsafeDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	got := plantSocket(t, sock)
	want := "partyline: data directory " + dir + " is writable by group/others (mode 0777): chmod 700 " + dir + "\n"
	for _, args := range [][]string{
		{"user", "add", "olga", "--password", "s3cret-pass", "--role", "owner"},
		{"serve", "--sip", "127.0.0.1:0"},
	} {
		if r := cliWithin(t, 10*time.Second, dir, args...); r.code != 1 || r.err != want || r.out != "" {
			t.Errorf("partyline %s in a 0777 directory: want exit 1 and %q:\n%s", strings.Join(args, " "), want, r)
		}
	}
	heardNothing(t, got)

	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the rest chowns the socket to another uid: run as root (CI runs every test as root)")
		}
		t.Skip("not root: cannot chown the planted socket to another uid")
	}
	// The directory closed, the socket still another user's.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	r := cliWithin(t, 10*time.Second, dir, "user", "add", "olga", "--password", "s3cret-pass", "--role", "owner")
	if r.code != 1 || !strings.HasPrefix(r.err, "partyline: admin socket "+sock+" belongs to uid 65534, not to uid 0: ") || strings.Count(r.err, "\n") != 1 {
		t.Errorf("a command to another user's socket: want exit 1 and one line naming it:\n%s", r)
	}
	heardNothing(t, got)
}

// cliWithin is cli for a command that might not end (serve): killed after d.
func cliWithin(t *testing.T, d time.Duration, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--data", dir}, args...)...)
	cmd.Env = append(os.Environ(), "PARTYLINE_DATA=")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ctx.Err() != nil {
		return result{so.String(), se.String() + "(killed: still running after " + d.String() + ")", -1}
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running partyline: %v", err)
	}
	return result{so.String(), se.String(), code}
}

// plantSocket listens on path as the other user's process would and
// returns what each connection sent.
func plantSocket(t *testing.T, path string) <-chan string {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(time.Second))
				b := make([]byte, 4096)
				n, _ := c.Read(b)
				got <- string(b[:n])
			}()
		}
	}()
	return got
}

func heardNothing(t *testing.T, got <-chan string) {
	t.Helper()
	for {
		select {
		case s := <-got:
			if s != "" {
				t.Fatalf("the planted socket received %d bytes: %.60q", len(s), s)
			}
		default:
			return
		}
	}
}
